// sandcron guest SDK for JavaScript: write a sandcron job as one function.
//
//   import { job, log, kv } from './sandcron.js';
//
//   export const run = job((ctx, input) => {
//     const args = input.json() ?? {};
//     log.info(`run ${ctx.runId} of ${ctx.jobName}`);
//     return { hello: args.name ?? 'world' };
//   });
//
// The handler gets the run's context and the job's input (a Uint8Array with
// .json() and .text()) and returns the run's output: a Uint8Array, a string,
// undefined (no output) or anything JSON.stringify takes (written as JSON).
// It runs synchronously (every sandcron call is synchronous): a handler that
// returns a Promise fails the run saying so. Throwing fails the run with kind
// plugin_error: a PluginError (or a thrown string) with exactly its message,
// any other Error with "Name: message", its stack going to the run's log.
//
// Built with componentize-qjs (QuickJS, --sync) by `sandcron build`; it also
// works with componentize-js (StarlingMonkey, `-d http fetch-event`). Types:
// sandcron.d.ts.
import * as witLog from 'sandcron:plugin/log@0.1.0';
import * as witKv from 'sandcron:plugin/kv@0.1.0';
import * as witHttp from 'sandcron:plugin/http@0.1.0';
import * as witSecrets from 'sandcron:plugin/secrets@0.1.0';

// componentize-qjs gives an interface as the module's default export,
// componentize-js as named exports.
const iface = (ns) => (ns.default && typeof ns.default === 'object' ? ns.default : ns);
const hostLog = iface(witLog);
const hostKv = iface(witKv);
const hostHttp = iface(witHttp);
const hostSecrets = iface(witSecrets);

/** UTF-8 bytes of a string (QuickJS has no TextEncoder). */
export function utf8Encode(text) {
  if (typeof TextEncoder !== 'undefined') return new TextEncoder().encode(text);
  const out = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c < 0xe000) c = 0xfffd; // a lone surrogate
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

/** The string UTF-8 bytes spell (invalid sequences become U+FFFD). */
export function utf8Decode(bytes) {
  if (typeof TextDecoder !== 'undefined') return new TextDecoder().decode(bytes);
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i++];
    let c = 0xfffd;
    let need = 0;
    if (b < 0x80) c = b;
    else if (b >= 0xc2 && b < 0xe0) { c = b & 31; need = 1; }
    else if (b >= 0xe0 && b < 0xf0) { c = b & 15; need = 2; }
    else if (b >= 0xf0 && b < 0xf5) { c = b & 7; need = 3; }
    let ok = true;
    for (let k = 0; k < need; k++) {
      if (i >= bytes.length || (bytes[i] & 0xc0) !== 0x80) { ok = false; break; }
      c = (c << 6) | (bytes[i++] & 63);
    }
    const overlong = (need === 2 && c < 0x800) || (need === 3 && (c < 0x10000 || c > 0x10ffff));
    if (!ok || overlong || (c >= 0xd800 && c < 0xe000)) c = 0xfffd;
    out += String.fromCodePoint(c);
  }
  return out;
}

const isBytes = (value) => value instanceof Uint8Array || value instanceof ArrayBuffer;

/** Bytes as they are, a string as UTF-8, anything else as JSON. */
const toBytes = (value) => {
  if (value === undefined || value === null) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (typeof value === 'string') return utf8Encode(value);
  return utf8Encode(JSON.stringify(value));
};

/** Bytes as they are, a string as UTF-8 (a stored value). */
const dataBytes = (value) => {
  if (typeof value === 'string') return utf8Encode(value);
  if (isBytes(value)) return toBytes(value);
  throw new TypeError('a kv value is a Uint8Array or a string (use kv.setJson for other values)');
};

// option::none as each engine passes it to the host: componentize-qjs takes
// null, componentize-js undefined.
const NONE = typeof TextEncoder === 'undefined' ? null : undefined;
const some = (value) => (value === undefined || value === null ? undefined : value);

/** The message of a thrown value: "Name: message" for an Error. */
const messageOf = (error) => {
  if (typeof error === 'string') return error;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  if (error && error.payload !== undefined) return String(error.payload);
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
};

/** Fails the run (kind plugin_error) with exactly this message. */
export class PluginError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PluginError';
  }
}

/** A host call's refusal (kv over quota, a host the job may not reach, a
 * timeout...): the message says why. */
export class HostError extends PluginError {
  constructor(message) {
    super(message);
    this.name = 'HostError';
  }
}

const host = (call) => {
  try {
    return call();
  } catch (error) {
    throw new HostError(error && error.payload !== undefined ? String(error.payload) : messageOf(error));
  }
};

/** Wraps `handler(ctx, input)` into the world's `run` export. */
export function job(handler) {
  return function run(ctx, input) {
    const context = Object.freeze({
      tenant: ctx.tenant,
      jobId: ctx.jobId,
      jobName: ctx.jobName,
      runId: ctx.runId,
      attempt: ctx.attempt,
      trigger: ctx.trigger,
      scheduledAtMs: Number(ctx.scheduledAt),
    });
    const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
    bytes.text = () => utf8Decode(bytes);
    bytes.json = () => {
      const text = utf8Decode(bytes);
      if (text.trim() === '') return undefined;
      try {
        return JSON.parse(text);
      } catch (error) {
        throw new PluginError(`the input is not JSON: ${messageOf(error)}`);
      }
    };
    let result;
    try {
      result = handler(context, bytes);
      if (result && typeof result.then === 'function') {
        throw new PluginError('the handler returned a Promise: a sandcron job runs synchronously (so does every sandcron call), drop async/await');
      }
      return toBytes(result);
    } catch (error) {
      // result::err(string) is the run's error message.
      if (error instanceof PluginError) throw error.message;
      if (error instanceof Error && error.stack) log.error(`${messageOf(error)}\n${error.stack}`);
      throw messageOf(error);
    }
  };
}

const level = (name) => (message) => hostLog.log(name, String(message));

/** Lines in the run's log. */
export const log = {
  trace: level('trace'),
  debug: level('debug'),
  info: level('info'),
  warn: level('warn'),
  error: level('error'),
};

/** Durable key-value state private to the job. */
export const kv = {
  get: (key) => some(hostKv.get(key)),
  getText: (key) => {
    const value = some(hostKv.get(key));
    return value === undefined ? undefined : utf8Decode(value);
  },
  getJson: (key) => {
    const value = some(hostKv.get(key));
    return value === undefined ? undefined : JSON.parse(utf8Decode(value));
  },
  set: (key, value) => host(() => hostKv.set(key, dataBytes(value))),
  setJson: (key, value) => host(() => hostKv.set(key, utf8Encode(JSON.stringify(value)))),
  delete: (key) => host(() => hostKv.delete(key)),
  keys: (prefix = '') => hostKv.keys(prefix),
};

const response = (answer) => ({
  status: answer.status,
  headers: answer.headers,
  body: answer.body,
  header: (name) => {
    const wanted = name.toLowerCase();
    const found = answer.headers.find(([key]) => key.toLowerCase() === wanted);
    return found ? found[1] : undefined;
  },
  text: () => utf8Decode(answer.body),
  json: () => JSON.parse(utf8Decode(answer.body)),
});

/** Outbound HTTP to the hosts in the job's http_allow. */
export const http = {
  fetch: ({ method = 'GET', url, headers = [], body, timeoutMs } = {}) =>
    response(
      host(() =>
        hostHttp.fetch({ method, url, headers, body: toBytes(body), timeoutMs: timeoutMs ?? NONE }),
      ),
    ),
  get: (url, options = {}) => http.fetch({ ...options, method: 'GET', url }),
  post: (url, body, options = {}) => {
    const headers = [...(options.headers ?? [])];
    const json = !(typeof body === 'string' || isBytes(body));
    if (json && !headers.some(([key]) => key.toLowerCase() === 'content-type')) {
      headers.push(['content-type', 'application/json']);
    }
    return http.fetch({ ...options, method: 'POST', url, headers, body });
  },
};

/** Secrets of the tenant that the job was granted by name. */
export const secrets = {
  get: (name) => some(hostSecrets.get(name)),
};

// There is no global fetch in a sandcron job (StarlingMonkey's traps the
// instance): say what to use instead.
globalThis.fetch = () => {
  throw new Error('fetch() is not available in a sandcron job: use http.fetch or http.get from sandcron.js');
};

// QuickJS has no console: send console.* to the run's log.
if (typeof globalThis.console === 'undefined') {
  const format = (args) =>
    args
      .map((arg) => {
        if (typeof arg === 'string') return arg;
        try {
          return JSON.stringify(arg);
        } catch {
          return String(arg);
        }
      })
      .join(' ');
  globalThis.console = {
    log: (...args) => log.info(format(args)),
    info: (...args) => log.info(format(args)),
    debug: (...args) => log.debug(format(args)),
    warn: (...args) => log.warn(format(args)),
    error: (...args) => log.error(format(args)),
    trace: (...args) => log.trace(format(args)),
  };
}
