"use client";
import * as React from "react";
import { Ban, MessageSquare, MoreHorizontal, ShieldCheck, UserMinus, UserPlus } from "lucide-react";
import type { Member, Role } from "@chat/client";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import {
  DropdownMenu,
  DropdownMenuContent,
  DropdownMenuItem,
  DropdownMenuLabel,
  DropdownMenuRadioGroup,
  DropdownMenuRadioItem,
  DropdownMenuSeparator,
  DropdownMenuSub,
  DropdownMenuSubContent,
  DropdownMenuSubTrigger,
  DropdownMenuTrigger,
} from "@/components/ui/dropdown-menu";
import { ScrollArea } from "@/components/ui/scroll-area";
import { Sheet, SheetContent, SheetDescription, SheetTitle } from "@/components/ui/sheet";
import { UserAvatar } from "@/components/user-avatar";
import { UserPicker } from "@/components/user-picker";
import { ConfirmDialog, type ConfirmRequest } from "@/components/confirm-dialog";
import { chat, displayName, ROLE_RANK, useChat } from "@/lib/store";
import { usePanelDialog } from "@/lib/ui";
import { reportError } from "@/lib/errors";
import { formatLastSeen } from "@/lib/format";

const ROLES: Role[] = ["owner", "admin", "member", "guest"];
const ROLE_LABEL: Record<Role, string> = { owner: "Owner", admin: "Admin", member: "Member", guest: "Guest" };

export function MembersSheet({ convId }: { convId: string }) {
  const dialog = usePanelDialog("members");
  return (
    <Sheet {...dialog}>
      <SheetContent side="right" className="w-[92vw] max-w-sm bg-background text-foreground">
        {dialog.open && <MembersPanel convId={convId} />}
      </SheetContent>
    </Sheet>
  );
}

function MembersPanel({ convId }: { convId: string }) {
  const conv = useChat((s) => s.conversations[convId]);
  const members = useChat((s) => s.members[convId]);
  const meId = useChat((s) => s.me?.id);
  const [adding, setAdding] = React.useState(false);
  const [confirm, setConfirm] = React.useState<ConfirmRequest | null>(null);

  React.useEffect(() => {
    void chat.loadConversation(convId);
    const t = setInterval(() => chat.refreshPresence(), 30_000);
    chat.refreshPresence();
    return () => clearInterval(t);
  }, [convId]);

  if (!conv) return null;
  const myRole = conv.role;
  const isDm = conv.kind === "dm";
  const archived = conv.archived === true;
  const canInvite = !isDm && !archived && ROLE_RANK[myRole] >= ROLE_RANK.admin;
  const sorted = [...(members ?? [])].sort((a, b) => ROLE_RANK[b.role] - ROLE_RANK[a.role]);

  const add = async (userId: string) => {
    try {
      await chat.chat?.addMember(convId, userId);
      await chat.loadConversation(convId);
    } catch (e) {
      reportError(e);
    }
  };

  return (
    <div className="flex h-full min-h-0 flex-col">
      <div className="border-b p-4 pr-10">
        <SheetTitle className="text-base font-semibold">Members{members ? ` (${members.length})` : ""}</SheetTitle>
        <SheetDescription className="text-xs text-muted-foreground">
          Your role: {ROLE_LABEL[myRole] ?? "—"}
        </SheetDescription>
      </div>
      {canInvite && (
        <div className="border-b p-4">
          {adding ? (
            <UserPicker
              label="Add someone"
              autoFocus
              exclude={(members ?? []).map((m) => m.user_id)}
              onPick={(u) => {
                void add(u.id);
                setAdding(false);
              }}
            />
          ) : (
            <Button variant="outline" size="sm" onClick={() => setAdding(true)}>
              <UserPlus aria-hidden="true" /> Add people
            </Button>
          )}
        </div>
      )}
      <ScrollArea className="min-h-0 flex-1">
        <ul className="p-2" aria-label="Members">
          {!members && <li className="p-2 text-sm text-muted-foreground">Loading…</li>}
          {sorted.map((m) => (
            <MemberRow key={m.user_id} convId={convId} m={m} meId={meId} myRole={myRole} isDm={isDm} archived={archived} ask={setConfirm} />
          ))}
        </ul>
      </ScrollArea>
      <ConfirmDialog req={confirm} onClose={() => setConfirm(null)} />
    </div>
  );
}

function MemberRow({
  convId,
  m,
  meId,
  myRole,
  isDm,
  archived,
  ask,
}: {
  convId: string;
  m: Member;
  meId?: string;
  myRole: Role;
  isDm: boolean;
  archived: boolean;
  ask: (r: ConfirmRequest) => void;
}) {
  const user = useChat((s) => s.users[m.user_id]);
  const presence = useChat((s) => s.presence[m.user_id]);
  const blocked = useChat((s) => s.blocks.includes(m.user_id));
  const plainName = useChat((s) => displayName(s.users, m.user_id));
  const name = m.user_id === meId ? `${plainName} (you)` : plainName;
  const me = m.user_id === meId;
  const canRemove = !isDm && !archived && !me && ROLE_RANK[myRole] >= ROLE_RANK.admin && ROLE_RANK[myRole] > ROLE_RANK[m.role];
  const canChangeRole = !isDm && !archived && !me && myRole === "owner";

  const run = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      reportError(e);
    }
  };
  const c = chat.chat;

  const setRole = (role: Role) => {
    if (!c || role === m.role) return;
    if (role === "owner") {
      ask({
        title: `Make ${name} the owner?`,
        description: "Ownership moves to them and you become an admin.",
        action: "Transfer ownership",
        run: () => run(() => c.setRole(convId, m.user_id, role).then(() => chat.loadConversation(convId))),
      });
      return;
    }
    void run(() => c.setRole(convId, m.user_id, role));
  };

  return (
    <li className="flex items-center gap-2 rounded-md px-2 py-1.5 hover:bg-muted/50">
      <UserAvatar userId={m.user_id} name={plainName} presence />
      <div className="min-w-0 flex-1">
        <div className="flex items-center gap-1.5">
          <span className="truncate text-sm font-medium">{name}</span>
          {m.role !== "member" && (
            <Badge variant={m.role === "guest" ? "outline" : "secondary"} className="shrink-0">
              {ROLE_LABEL[m.role]}
            </Badge>
          )}
        </div>
        <p className="truncate text-xs text-muted-foreground">
          {[
            user?.username ? `@${user.username}` : "",
            presence ? (presence.status === "online" ? "Online" : formatLastSeen(presence.last_seen)) : "",
            blocked ? "Blocked" : "",
          ]
            .filter(Boolean)
            .join(" · ")}
        </p>
      </div>
      {!me && c && (
        <DropdownMenu>
          <DropdownMenuTrigger asChild>
            <Button variant="ghost" size="icon-sm" aria-label={`Actions for ${name}`}>
              <MoreHorizontal aria-hidden="true" />
            </Button>
          </DropdownMenuTrigger>
          <DropdownMenuContent align="end" className="w-52">
            <DropdownMenuLabel>{name}</DropdownMenuLabel>
            {!isDm && (
              <DropdownMenuItem
                onSelect={() =>
                  void run(async () => {
                    const conv = await c.createConversation({ kind: "dm", members: [m.user_id] });
                    chat.adopt(conv);
                  })
                }
              >
                <MessageSquare aria-hidden="true" /> Message
              </DropdownMenuItem>
            )}
            {canChangeRole && (
              <DropdownMenuSub>
                <DropdownMenuSubTrigger>
                  <ShieldCheck aria-hidden="true" /> Role
                </DropdownMenuSubTrigger>
                <DropdownMenuSubContent>
                  <DropdownMenuRadioGroup value={m.role} onValueChange={(v) => setRole(v as Role)}>
                    {ROLES.map((r) => (
                      <DropdownMenuRadioItem key={r} value={r}>
                        {ROLE_LABEL[r]}
                      </DropdownMenuRadioItem>
                    ))}
                  </DropdownMenuRadioGroup>
                </DropdownMenuSubContent>
              </DropdownMenuSub>
            )}
            {canRemove && (
              <DropdownMenuItem
                destructive
                onSelect={() =>
                  ask({
                    title: `Remove ${name}?`,
                    description: "They will no longer see new messages here.",
                    action: "Remove",
                    destructive: true,
                    run: () => run(() => c.removeMember(convId, m.user_id)),
                  })
                }
              >
                <UserMinus aria-hidden="true" /> Remove from conversation
              </DropdownMenuItem>
            )}
            <DropdownMenuSeparator />
            <DropdownMenuItem
              destructive={!blocked}
              onSelect={() =>
                blocked
                  ? void run(async () => {
                      await c.unblock(m.user_id);
                      chat.setBlocks(await c.blocks());
                    })
                  : ask({
                      title: `Block ${name}?`,
                      description: "They won't be able to message you directly, add you to conversations, or see when you're online.",
                      action: "Block",
                      destructive: true,
                      run: () =>
                        run(async () => {
                          await c.block(m.user_id);
                          chat.setBlocks(await c.blocks());
                        }),
                    })
              }
            >
              <Ban aria-hidden="true" /> {blocked ? "Unblock" : "Block"}
            </DropdownMenuItem>
          </DropdownMenuContent>
        </DropdownMenu>
      )}
    </li>
  );
}
