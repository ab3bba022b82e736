/**
 * A watch client for integration tests: one `/records/watch` stream over its own HTTP connection
 * (so the kernel may hand it to any serving thread), read in the background into a list of
 * events, with the serving thread its first comment names and the last id it saw.
 *
 * @module
 */
import { readSse, type SseEvent } from "../../src/watch/mod.ts";

/** A change event as a test compares them: its id, kind, partition key, sort key and data. */
export interface SeenEvent {
  readonly id: string;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

/** One open watch stream of a real node. */
export class WatchClient {
  /** Change events (put, delete, reset, overflow) in arrival order. */
  readonly events: SeenEvent[] = [];
  /** The last id the stream carried (a heartbeat's included): where a resume starts. */
  lastId: string | null = null;
  /** The serving thread named by the stream's first comment (null: the main thread). */
  thread: number | null = null;
  /** Resolves when the stream ends (the node stopped, the client closed it, an error). */
  readonly ended: Promise<void>;
  private readonly abort = new AbortController();
  private readonly client: Deno.HttpClient;

  private constructor(response: Response, client: Deno.HttpClient) {
    this.client = client;
    const events = readSse(response.body!, {
      signal: this.abort.signal,
      onComment: (text) => {
        const match = /^watching, thread (\d+)$/.exec(text);
        if (match !== null) this.thread = Number(match[1]);
      },
    });
    this.ended = (async () => {
      try {
        for await (const event of events) this.take(event);
      } catch {
        // A reset connection ends the stream like a close.
      }
    })();
  }

  /** Opens `GET {url}/records/watch?{query}` (resuming from `lastEventId` when given). */
  static async open(
    url: string,
    query: string,
    lastEventId: string | null = null,
  ): Promise<WatchClient> {
    const client = Deno.createHttpClient({});
    const headers: Record<string, string> = lastEventId === null
      ? {}
      : { "last-event-id": lastEventId };
    const response = await fetch(`${url}/records/watch?${query}`, { headers, client });
    if (response.status !== 200) {
      const text = await response.text();
      client.close();
      throw new Error(`watch ${query}: ${response.status} ${text}`);
    }
    return new WatchClient(response, client);
  }

  private take(event: SseEvent): void {
    if (event.id !== null) this.lastId = event.id;
    if (event.event === "") return;
    this.events.push({ id: event.id ?? "", event: event.event, data: JSON.parse(event.data) });
  }

  /** Resolves once `check(events)` holds, or throws after `timeoutMs`. */
  async until(what: string, timeoutMs: number, check: (events: SeenEvent[]) => boolean) {
    const deadline = Date.now() + timeoutMs;
    while (!check(this.events)) {
      if (Date.now() > deadline) {
        throw new Error(
          `watch: ${what} not seen within ${timeoutMs} ms (${this.events.length} events)`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Closes the stream and its connection. */
  async close(): Promise<void> {
    this.abort.abort();
    await this.ended;
    this.client.close();
  }
}

/** `partition:offset[:index]` of an event's own partition, from a one-partition id. */
export function positionOf(id: string, partition: number): [number, number] {
  for (const entry of id.split(",")) {
    const [p, offset, index] = entry.split(":").map(Number);
    if (p === partition) return [offset!, index ?? Infinity];
  }
  throw new Error(`id ${id} has no cursor for partition ${partition}`);
}
