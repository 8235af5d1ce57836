import type { Metadata } from "next";
import { AdminScreen } from "@/components/admin-screen";

export const metadata: Metadata = { title: "Administration · Chat" };

export default function AdminPage() {
  return <AdminScreen />;
}
