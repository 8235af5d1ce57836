"use client";
import * as React from "react";
import { Button } from "@/components/ui/button";
import { Dialog, DialogContent, DialogDescription, DialogFooter, DialogHeader, DialogTitle } from "@/components/ui/dialog";

export interface ConfirmRequest {
  title: string;
  description?: string;
  action: string;
  destructive?: boolean;
  run: () => Promise<unknown> | void;
}

export function ConfirmDialog({ req, onClose }: { req: ConfirmRequest | null; onClose: () => void }) {
  const [busy, setBusy] = React.useState(false);
  return (
    <Dialog open={req !== null} onOpenChange={(o) => !o && !busy && onClose()}>
      <DialogContent className="max-w-sm">
        {req && (
          <>
            <DialogHeader>
              <DialogTitle>{req.title}</DialogTitle>
              {req.description && <DialogDescription>{req.description}</DialogDescription>}
            </DialogHeader>
            <DialogFooter>
              <Button variant="outline" onClick={onClose} disabled={busy}>
                Cancel
              </Button>
              <Button
                variant={req.destructive ? "destructive" : "default"}
                disabled={busy}
                onClick={async () => {
                  setBusy(true);
                  try {
                    await req.run();
                  } finally {
                    setBusy(false);
                    onClose();
                  }
                }}
              >
                {req.action}
              </Button>
            </DialogFooter>
          </>
        )}
      </DialogContent>
    </Dialog>
  );
}
