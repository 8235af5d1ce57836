"use client";
import { Avatar, AvatarFallback } from "@/components/ui/avatar";
import { hueOf, initials } from "@/lib/format";
import { cn } from "@/lib/utils";
import { useChat } from "@/lib/store";

export function PresenceDot({ userId, className }: { userId: string; className?: string }) {
  const status = useChat((s) => s.presence[userId]?.status);
  if (!status) return null;
  return (
    <span
      className={cn(
        "absolute -bottom-0.5 -right-0.5 block h-3 w-3 rounded-full border-2 border-background",
        status === "online" ? "bg-online" : "bg-muted-foreground/50",
        className,
      )}
      role="img"
      aria-label={status === "online" ? "Online" : "Offline"}
    />
  );
}

export function UserAvatar({
  userId,
  name,
  size = "md",
  presence = false,
  className,
}: {
  userId: string;
  name: string;
  size?: "sm" | "md" | "lg";
  presence?: boolean;
  className?: string;
}) {
  const hue = hueOf(userId);
  const dim = size === "sm" ? "h-6 w-6 text-[10px]" : size === "lg" ? "h-10 w-10 text-sm" : "h-8 w-8 text-xs";
  return (
    <span className={cn("relative inline-flex shrink-0", className)}>
      <Avatar className={dim}>
        <AvatarFallback
          className="text-white"
          style={{ backgroundColor: `hsl(${hue} 55% 28%)` }}
          aria-hidden="true"
        >
          {initials(name)}
        </AvatarFallback>
      </Avatar>
      {presence && <PresenceDot userId={userId} />}
    </span>
  );
}
