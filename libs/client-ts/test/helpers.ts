import { vi } from "vitest";
import { ChatClient, type ChatError, type ChatEvent, type ClientOptions, type ConnectionState, type OutgoingMessage } from "../src/index.js";
import { FakeServer } from "./fakes.js";

/** Let `ms` of fake time pass, running timers and the promise callbacks they cause. */
export async function tick(ms = 0): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

export interface Recorder {
  events: ChatEvent[];
  states: ConnectionState[];
  errors: ChatError[];
  outbox: OutgoingMessage[][];
}

export function record(client: ChatClient): Recorder {
  const r: Recorder = { events: [], states: [], errors: [], outbox: [] };
  client.on("event", (e) => r.events.push(e));
  client.on("state", (s) => r.states.push(s));
  client.on("error", (e) => r.errors.push(e));
  client.on("outbox", (l) => r.outbox.push(l));
  return r;
}

/** A server with users ann and bob sharing conversation "c1" (2 member_joined events). */
export function world(): FakeServer {
  const server = new FakeServer();
  const ann = server.addUser("ann");
  const bob = server.addUser("bob");
  server.addConv("c1", [ann.id, bob.id]);
  return server;
}

export async function loggedIn(server: FakeServer, username = "ann", extra: ClientOptions = {}): Promise<ChatClient> {
  const p = ChatClient.login(username, "password123", server.options(extra));
  await tick(0);
  return p;
}

/** Login, connect and let the first sync finish. */
export async function connected(server: FakeServer, username = "ann", extra: ClientOptions = {}): Promise<{ client: ChatClient; rec: Recorder }> {
  const client = await loggedIn(server, username, extra);
  const rec = record(client);
  const p = client.connect();
  await tick(20);
  await p;
  return { client, rec };
}

export function seqs(evs: ChatEvent[], conv = "c1"): number[] {
  return evs.filter((e) => e.conv === conv).map((e) => e.seq);
}
