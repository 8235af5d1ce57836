"use client";
import { Download } from "lucide-react";
import type { Attachment } from "@chat/client";
import { Dialog, DialogContent, DialogDescription, DialogTitle } from "@/components/ui/dialog";
import { buttonVariants } from "@/components/ui/button";
import { formatBytes } from "@/lib/format";

export function Lightbox({ att, onClose }: { att: Attachment | null; onClose: () => void }) {
  return (
    <Dialog open={att !== null} onOpenChange={(o) => !o && onClose()}>
      <DialogContent className="max-w-[min(96vw,1200px)] gap-3 bg-background p-3 sm:p-4">
        {att && (
          <>
            <DialogTitle className="truncate pr-8 text-base">{att.name}</DialogTitle>
            <DialogDescription className="sr-only">Full-size image</DialogDescription>
            <div className="flex min-h-0 items-center justify-center">
              {/* eslint-disable-next-line @next/next/no-img-element */}
              <img
                src={att.url}
                alt={att.name}
                width={att.width}
                height={att.height}
                className="max-h-[75dvh] w-auto max-w-full rounded object-contain"
              />
            </div>
            <div className="flex items-center justify-between text-sm text-muted-foreground">
              <span>
                {att.width && att.height ? `${att.width} × ${att.height} · ` : ""}
                {formatBytes(att.size)}
              </span>
              <a href={att.url} download={att.name} rel="noopener noreferrer" className={buttonVariants({ variant: "outline", size: "sm" })}>
                <Download aria-hidden="true" /> Download
              </a>
            </div>
          </>
        )}
      </DialogContent>
    </Dialog>
  );
}
