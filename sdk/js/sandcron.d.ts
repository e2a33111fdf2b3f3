// Types of the sandcron guest SDK for JavaScript (sandcron.js).

/** What the daemon tells a run about itself. */
export interface Context {
  /** The tenant that owns the job. */
  readonly tenant: string;
  /** The job's id. */
  readonly jobId: string;
  /** The job's name. */
  readonly jobName: string;
  /** This run's id. */
  readonly runId: string;
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
  /** What started the run. */
  readonly trigger: 'schedule' | 'manual' | 'retry' | 'dependency';
  /** When the run was due, milliseconds since the Unix epoch (UTC). */
  readonly scheduledAtMs: number;
}

/** The job's input: its JSON as UTF-8 bytes (empty when the job has none). */
export interface Input extends Uint8Array {
  /** The input as text. */
  text(): string;
  /** The input parsed as JSON; undefined when there is none. */
  json<T = any>(): T | undefined;
}

/** What a run may return: bytes as they are, a string as UTF-8, undefined
 * for no output, anything else as JSON. */
export type Output = Uint8Array | string | undefined | null | number | boolean | object;

/** Wraps `handler` into the component's `run` export:
 * `export const run = job((ctx, input) => ...)`. The handler is synchronous. */
export function job(handler: (ctx: Context, input: Input) => Output): (ctx: unknown, input: Uint8Array) => Uint8Array;

/** Fails the run (kind plugin_error) with exactly this message. */
export class PluginError extends Error {
  constructor(message: string);
}

/** A host call's refusal (kv over quota, a host the job may not reach, a
 * timeout...): the message says why. */
export class HostError extends PluginError {
  constructor(message: string);
}

/** Lines in the run's log (console.* goes there too). */
export const log: {
  trace(message: unknown): void;
  debug(message: unknown): void;
  info(message: unknown): void;
  warn(message: unknown): void;
  error(message: unknown): void;
};

/** Durable key-value state private to the job (keys up to 1 KiB, values up to 1 MiB). */
export const kv: {
  /** The value under `key`, or undefined. */
  get(key: string): Uint8Array | undefined;
  /** The value under `key` as text, or undefined. */
  getText(key: string): string | undefined;
  /** The value under `key` parsed as JSON, or undefined. */
  getJson<T = any>(key: string): T | undefined;
  /** Stores bytes, or a string as UTF-8; throws HostError when refused. */
  set(key: string, value: Uint8Array | string): void;
  /** Stores `value` as JSON; throws HostError when refused. */
  setJson(key: string, value: unknown): void;
  /** Removes `key`. */
  delete(key: string): void;
  /** The keys that start with `prefix`, in order. */
  keys(prefix?: string): string[];
};

/** A request body: bytes as they are, a string as UTF-8, anything else as JSON. */
export type Body = Uint8Array | ArrayBuffer | string | object | undefined | null;

export interface RequestOptions {
  /** Headers as [name, value] pairs. */
  headers?: [string, string][];
  /** The request's timeout (the daemon caps it). */
  timeoutMs?: number;
}

export interface Request extends RequestOptions {
  method?: string;
  url: string;
  body?: Body;
}

export interface Response {
  readonly status: number;
  readonly headers: [string, string][];
  readonly body: Uint8Array;
  /** The first header called `name` (any case), or undefined. */
  header(name: string): string | undefined;
  /** The body as text. */
  text(): string;
  /** The body parsed as JSON. */
  json<T = any>(): T;
}

/** Outbound HTTP to the hosts in the job's http_allow; throws HostError
 * when the daemon refuses or the request fails. */
export const http: {
  fetch(request: Request): Response;
  get(url: string, options?: RequestOptions): Response;
  /** A body that is not bytes or a string is sent as JSON, with its content type. */
  post(url: string, body: Body, options?: RequestOptions): Response;
};

/** Secrets of the tenant that the job was granted by name (masked as
 * [secret:NAME] in the run's log and output). */
export const secrets: {
  get(name: string): string | undefined;
};

/** UTF-8 bytes of a string. */
export function utf8Encode(text: string): Uint8Array;
/** The string UTF-8 bytes spell. */
export function utf8Decode(bytes: Uint8Array): string;
