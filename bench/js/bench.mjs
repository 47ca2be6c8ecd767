// The official Phoenix JavaScript client (npm `phoenix`, `ws` as the
// transport) under the workloads of bench/run.sh, against a running
// nhc-devserver. Prints one JSON object on stdout.
//
//   node bench.mjs run  SERVER_JSON [latency=20] [seq=5000] [pipe=50000] [window=100]
//                                   [flood=50000] [size=256] [flood_runs=1]
//   (flood_runs > 1: one warm-up flood, then the median of that many)
//   node bench.mjs idle SERVER_JSON
//   node bench.mjs trickle SERVER_JSON rate=R [count=10000] [runs=3] [size=256]
//   (trickle: after a warm-up flood at full speed, `runs` floods paced by the
//   dev server at R messages a second, each message sent alone)
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { Socket } from "phoenix";
import WebSocket from "ws";

const PAYLOAD = { value: 42 };
const [mode, infoPath, ...rest] = process.argv.slice(2);
const info = JSON.parse(readFileSync(infoPath, "utf8"));
const arg = (name, fallback) => {
  const hit = rest.find((a) => a.startsWith(`${name}=`));
  return hit ? Number(hit.slice(name.length + 1)) : fallback;
};

// phoenix appends "/websocket" itself.
const base = (url) => url.replace(/\/websocket$/, "");

// phoenix calls `new transport(url, protocols)`: TLS options ride on a subclass.
const tls = {
  ca: readFileSync(info.ca),
  cert: readFileSync(info.device_cert),
  key: readFileSync(info.device_key),
};
class TlsWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, tls);
  }
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const quantile = (values, p) => {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.round((v.length - 1) * p)];
};
const fail = (what) => {
  process.stderr.write(`bench.mjs: ${what}\n`);
  process.exit(1);
};
const deadline = (seconds, what) => setTimeout(() => fail(`${what}: no answer in ${seconds} s`), seconds * 1000);

// No permessage-deflate (`ws` offers it by default; the dev server, like
// this library, declines it anyway): the comparison is without it.
class PlainWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { perMessageDeflate: false });
  }
}

function open(tlsOn) {
  const socket = new Socket(base(tlsOn ? info.wss_url : info.ws_url), {
    transport: tlsOn ? TlsWebSocket : PlainWebSocket,
    heartbeatIntervalMs: 30000,
  });
  return socket;
}

function join(socket, topic) {
  const channel = socket.channel(topic, {});
  return new Promise((resolve) => {
    const timer = deadline(30, `join ${topic}`);
    channel
      .join()
      .receive("ok", () => {
        clearTimeout(timer);
        resolve(channel);
      })
      .receive("error", (e) => fail(`join ${topic} refused: ${JSON.stringify(e)}`));
  });
}

function push(channel) {
  return new Promise((resolve) => {
    channel
      .push("ping", PAYLOAD)
      .receive("ok", resolve)
      .receive("error", (e) => fail(`push error ${JSON.stringify(e)}`))
      .receive("timeout", () => fail("push timeout"));
  });
}

function control(path, body) {
  const url = new URL(path, info.control_url);
  const data = JSON.stringify(body);
  return new Promise((resolve) => {
    const req = request(
      url,
      { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data) } },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => {
          if (res.statusCode !== 200) fail(`POST ${path} -> ${res.statusCode} ${text}`);
          resolve(JSON.parse(text));
        });
      },
    );
    req.on("error", (e) => fail(`POST ${path}: ${e.message}`));
    req.end(data);
  });
}

async function connectJoin(n) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const socket = open(true);
    const t0 = now();
    socket.connect();
    await join(socket, "room:js-latency");
    ms.push((now() - t0) * 1e3);
    await new Promise((resolve) => socket.disconnect(resolve));
  }
  return { n, median_ms: quantile(ms, 0.5) };
}

async function sequential(channel, n) {
  const us = [];
  const start = now();
  for (let i = 0; i < n; i++) {
    const t0 = now();
    await push(channel);
    us.push((now() - t0) * 1e6);
  }
  return { n, median_us: quantile(us, 0.5), p99_us: quantile(us, 0.99), per_s: n / (now() - start) };
}

// Each reply sends the next push, so `window` stay outstanding.
function pipelined(channel, total, window) {
  return new Promise((resolve) => {
    let sent = 0;
    let done = 0;
    const cpu0 = cpu();
    const t0 = now();
    const timer = deadline(300, "pipelined pushes");
    const send = () => {
      if (sent >= total) return;
      sent++;
      channel
        .push("ping", PAYLOAD)
        .receive("ok", () => {
          done++;
          if (done === total) {
            clearTimeout(timer);
            const elapsed = now() - t0;
            resolve({ n: total, window, per_s: total / elapsed, cpu_s_per_10k: ((cpu() - cpu0) * 1e4) / total });
          } else {
            send();
          }
        })
        .receive("error", (e) => fail(`push error ${JSON.stringify(e)}`))
        .receive("timeout", () => fail("pipelined push timeout"));
    };
    for (let i = 0; i < window; i++) send();
  });
}

function floodOnce(channel, n, size, rate) {
  return new Promise((resolve) => {
    let received = 0;
    const timer = deadline(600 + (rate ? (2 * n) / rate : 0), "flood");
    const cpu0 = cpu();
    const switches0 = process.resourceUsage().voluntaryContextSwitches;
    const t0 = now();
    const ref = channel.on("flood", (payload) => {
      if (payload.i !== received) fail(`flood message ${payload.i} arrived as number ${received}`);
      received++;
      if (received === n) {
        const elapsed = now() - t0;
        const used = cpu() - cpu0;
        clearTimeout(timer);
        channel.off("flood", ref);
        const switches = process.resourceUsage().voluntaryContextSwitches - switches0;
        resolve({ per_s: n / elapsed, cpu_s_per_10k: (used * 1e4) / n, switches_per_msg: switches / n });
      }
    });
    // with_join_ref: channel pushes, as for every client (see bench/c/benchlib.c).
    const body = { topic: "room:js-flood", event: "flood", count: n, size, with_join_ref: true };
    if (rate) body.rate = rate;
    control("/flood", body);
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

// runs > 1: one warm-up flood, then the median of `runs` floods.
async function flood(socket, n, size, runs) {
  const channel = await join(socket, "room:js-flood");
  const results = [];
  for (let r = 0; r < (runs > 1 ? runs + 1 : 1); r++) results.push(await floodOnce(channel, n, size));
  const measured = runs > 1 ? results.slice(1) : results;
  return {
    n,
    size,
    runs: measured.length,
    cpu_runs: measured.map((r) => r.cpu_s_per_10k),
    per_s: median(measured.map((r) => r.per_s)),
    cpu_s_per_10k: median(measured.map((r) => r.cpu_s_per_10k)),
  };
}

async function run() {
  const out = { client: "js", version: JSON.parse(readFileSync(new URL("node_modules/phoenix/package.json", import.meta.url))).version };
  out.ws_version = JSON.parse(readFileSync(new URL("node_modules/ws/package.json", import.meta.url))).version;
  out.node = process.version;
  out.connect_join = await connectJoin(arg("latency", 20));
  const socket = open(false);
  socket.connect();
  const channel = await join(socket, "room:js-push");
  out.sequential = await sequential(channel, arg("seq", 5000));
  out.pipelined = await pipelined(channel, arg("pipe", 50000), arg("window", 100));
  const n = arg("flood", 50000);
  out.flood = n > 0 ? await flood(socket, n, arg("size", 256), arg("flood_runs", 1)) : null;
  process.stdout.write(`${JSON.stringify(out)}\n`);
  socket.disconnect(() => process.exit(0));
}

// The dev server paces the measured floods (`rate`), not the warm-up.
async function trickle() {
  const rate = arg("rate", 0);
  if (!(rate > 0)) fail("trickle needs rate=R > 0");
  const n = arg("count", 10000);
  const runs = arg("runs", 3);
  const size = arg("size", 256);
  const socket = open(false);
  socket.connect();
  const channel = await join(socket, "room:js-flood");
  await floodOnce(channel, n, size, 0);
  const measured = [];
  for (let r = 0; r < runs; r++) measured.push(await floodOnce(channel, n, size, rate));
  const out = {
    client: "js",
    version: JSON.parse(readFileSync(new URL("node_modules/phoenix/package.json", import.meta.url))).version,
    node: process.version,
    rate,
    flood: {
      n,
      size,
      runs,
      cpu_runs: measured.map((r) => r.cpu_s_per_10k),
      per_s: median(measured.map((r) => r.per_s)),
      cpu_s_per_10k: median(measured.map((r) => r.cpu_s_per_10k)),
    },
    switches_per_msg_runs: measured.map((r) => r.switches_per_msg),
    switches_per_msg: median(measured.map((r) => r.switches_per_msg)),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  socket.disconnect(() => process.exit(0));
}

async function idle() {
  const socket = open(true);
  socket.connect();
  await join(socket, "device");
  // An interval to settle after the join, then the footprint is read.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const status = readFileSync("/proc/self/status", "utf8");
  const field = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))[1]);
  process.stdout.write(`${JSON.stringify({ client: "js", rss_kib: field("VmRSS"), threads: field("Threads") })}\n`);
  socket.disconnect(() => process.exit(0));
}

if (mode === "run") await run();
else if (mode === "idle") await idle();
else if (mode === "trickle") await trickle();
else fail("usage: node bench.mjs run|idle|trickle SERVER_JSON [name=value ...]");
