/// <reference lib="dom" />
/**
 * The dashboard in the browser (served as /dashboard/dashboard.js; uPlot is loaded before it as a
 * classic script). It reads a token from the URL fragment (`#token=`), `?token=`, or a form, keeps
 * it in sessionStorage, and sends it as a bearer header on every call:
 *
 *   GET  v1/status              every 2 s: the chains, the NFs and the totals
 *   GET  v1/stream              the live rates, once a second (read with fetch(): EventSource
 *                               cannot send a header)
 *   POST v1/nfs/:name/restart   the Restart button
 *   POST v1/nfs/:name/scale     the Scale button, with the replica count beside it
 *   POST v1/nfs/:name/drain     the Drain button (Restart brings a drained NF back)
 *
 * It draws the chains as a graph (input port → NFs → output port) with packets/s on each edge and
 * drops on each node, and a card per NF with its numbers, buttons and small uPlot charts.
 * Elements the system test reads carry `data-*` attributes with the raw numbers.
 */
import type UPlot from 'uplot';
import type { NfRates, Rates } from '../rates.js';
import type { HostStatus } from '../schemas.js';

const TOKEN_KEY = 'nfvisor.token';
/** Points kept in each chart (seconds). */
const WINDOW = 120;
const STATUS_EVERY_MS = 2000;
const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['#c4320a', '#7a5af8', '#dc6803', '#0e9384', '#dd2590', '#475467'];

const uPlot = (globalThis as unknown as { uPlot: typeof UPlot }).uPlot;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element as T;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  text = '',
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== '') element.textContent = text;
  return element;
}

function svg(tag: string, attributes: Record<string, string | number> = {}, text = ''): SVGElement {
  const element = document.createElementNS(SVG, tag as keyof SVGElementTagNameMap);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== '') element.textContent = text;
  return element;
}

/** 1234567 → "1.23M". */
function short(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toPrecision(3)}G`;
  if (abs >= 1e6) return `${(n / 1e6).toPrecision(3)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toPrecision(3)}k`;
  return abs >= 100 || n === 0 ? n.toFixed(0) : n.toPrecision(3);
}

function sum(record: Record<string, number>): number {
  let total = 0;
  for (const value of Object.values(record)) total += value;
  return total;
}

function setValue(element: Element, value: number, text: string): void {
  element.setAttribute('data-value', String(value));
  element.textContent = text;
}

// ---- the token ----

function readToken(): string | null {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  const fromQuery = new URLSearchParams(location.search).get('token');
  const given = fromHash ?? fromQuery;
  if (given !== null && given !== '') {
    sessionStorage.setItem(TOKEN_KEY, given);
    // Out of the address bar and the history.
    history.replaceState(null, '', location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

let token: string | null = null;

async function api<T>(
  path: string,
  init: { method?: string; body?: unknown; signal?: AbortSignal } = {},
): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${token ?? ''}` };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method: init.method ?? 'GET',
    headers,
    cache: 'no-store',
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  const body = (await response.json().catch(() => null)) as (T & { code?: string; message?: string }) | null;
  if (!response.ok)
    throw new ApiError(response.status, body?.code ?? 'NFV_ERR_HTTP', body?.message ?? response.statusText);
  return body as T;
}

function askForToken(message = ''): void {
  byId('login').classList.remove('hidden');
  byId('login-error').textContent = message;
  byId<HTMLInputElement>('token').focus();
}

// ---- the chain graph ----

interface EdgeLabel {
  text: SVGElement;
  /** Packets/s of the NF it leads into, or of the output port. */
  into: { nf: string } | { port: string };
}

const graph = {
  key: '',
  edges: [] as EdgeLabel[],
  nfDrops: new Map<string, SVGElement[]>(),
  nfNodes: new Map<string, SVGElement[]>(),
  inputs: [] as SVGElement[],
  outputs: new Map<string, SVGElement[]>(),
};

/** Input ports by name when the status lists them (it lists outputs; inputs show as "input"). */
function inputPorts(status: HostStatus): string[] {
  const outputs = new Set(status.chains.map((c) => c.output));
  return Object.keys(status.ports).filter((p) => !outputs.has(p));
}

function drawGraph(status: HostStatus): void {
  const W = 220;
  const H = 58;
  const GAP = 120;
  const ROW = 92;
  const root = byId('chains');
  root.replaceChildren();
  graph.edges = [];
  graph.nfDrops.clear();
  graph.nfNodes.clear();
  graph.outputs.clear();
  graph.inputs = [];
  const inputs = inputPorts(status);
  const columns = Math.max(...status.chains.map((c) => c.through.length + 2), 2);
  const width = columns * W + (columns - 1) * GAP + 20;
  const height = Math.max(status.chains.length, 1) * ROW - ROW + H + 20;
  const picture = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': 'chains',
  });
  status.chains.forEach((chain, row) => {
    const y = 10 + row * ROW;
    const names = [inputs.join(' | ') || 'input', ...chain.through, chain.output];
    const group = svg('g', { 'data-chain': chain.name });
    names.forEach((name, i) => {
      const x = 10 + i * (W + GAP);
      const isPort = i === 0 || i === names.length - 1;
      if (i > 0) {
        const x0 = x - GAP;
        const edge = svg('g', { class: 'edge' });
        edge.append(svg('line', { x1: x0, y1: y + H / 2, x2: x - 6, y2: y + H / 2 }));
        edge.append(
          svg('path', {
            d: `M${x - 8},${y + H / 2 - 5} L${x},${y + H / 2} L${x - 8},${y + H / 2 + 5}z`,
            fill: '#475467',
          }),
        );
        const into = i === names.length - 1 ? { port: name } : { nf: name };
        const label = svg(
          'text',
          {
            x: x0 + GAP / 2,
            y: y + H / 2 - 8,
            'text-anchor': 'middle',
            'data-edge': `${chain.name}:${i - 1}`,
            'data-into': name,
          },
          '–',
        );
        edge.append(label);
        graph.edges.push({ text: label, into });
        group.append(edge);
      }
      const node = svg('g', { class: `node ${isPort ? 'port' : 'nf'}`, 'data-node': name });
      node.append(svg('rect', { x, y, width: W, height: H, rx: 8 }));
      node.append(svg('text', { class: 'name', x: x + 10, y: y + 20 }, isPort ? `⇄ ${name}` : name));
      const detail = svg('text', { class: isPort ? 'detail' : 'drops', x: x + 10, y: y + 42 }, '');
      node.append(detail);
      if (!isPort) {
        graph.nfDrops.set(name, [...(graph.nfDrops.get(name) ?? []), detail]);
        graph.nfNodes.set(name, [...(graph.nfNodes.get(name) ?? []), node]);
      } else if (i === 0) graph.inputs.push(detail);
      else graph.outputs.set(name, [...(graph.outputs.get(name) ?? []), detail]);
      group.append(node);
    });
    picture.append(group);
  });
  root.append(picture);
  byId('graph').classList.remove('hidden');
}

function updateGraph(rates: Rates | null, status: HostStatus | null): void {
  if (rates !== null) {
    const nfRate = new Map(rates.nfs.map((nf) => [nf.name, nf]));
    for (const edge of graph.edges) {
      const pps =
        'nf' in edge.into ? (nfRate.get(edge.into.nf)?.pps ?? 0) : (rates.ports[edge.into.port] ?? 0);
      setValue(edge.text, pps, `${short(pps)} pkt/s`);
    }
  }
  if (status === null) return;
  const ratesByNf = new Map((rates?.nfs ?? []).map((nf) => [nf.name, nf]));
  for (const nf of status.nfs) {
    const total = sum(nf.drops);
    const perSecond = sum(ratesByNf.get(nf.name)?.drops ?? {});
    for (const text of graph.nfDrops.get(nf.name) ?? []) {
      setValue(text, total, `drops ${short(perSecond)}/s · ${short(total)} total`);
      const reasons = Object.entries(nf.drops).map(([r, n]) => `${r}: ${n}`);
      text.replaceChildren(
        document.createTextNode(text.textContent ?? ''),
        svg('title', {}, reasons.join('\n') || 'no drops'),
      );
    }
    for (const node of graph.nfNodes.get(nf.name) ?? []) node.classList.toggle('down', nf.quarantined);
  }
  // Host drops (no chain, NF down…) are charged to the input: they never reached an NF.
  const hostDropped = sum(status.hostDrops);
  const rx = rates?.received ?? 0;
  for (const text of graph.inputs)
    setValue(text, hostDropped, `rx ${short(rx)}/s · host drops ${short(hostDropped)}`);
  for (const [port, texts] of graph.outputs) {
    const sent = status.ports[port]?.sent ?? 0;
    for (const text of texts) setValue(text, sent, `tx ${short(sent)} total`);
  }
}

// ---- NF cards ----

interface Chart {
  plot: UPlot | null;
  host: HTMLElement;
  labels: string[];
  data: number[][];
}

interface NfView {
  card: HTMLElement;
  pps: HTMLElement;
  drops: HTMLElement;
  restarts: HTMLElement;
  quarantined: HTMLElement;
  note: HTMLElement;
  restart: HTMLButtonElement;
  scale: HTMLButtonElement;
  drain: HTMLButtonElement;
  replicas: HTMLInputElement;
  rate: Chart;
  dropChart: Chart;
  latency: Chart;
  restartChart: Chart;
  /** Restarts when the last restart was requested here, until the count goes past it. */
  awaiting: number | null;
}

const views = new Map<string, NfView>();
const times: number[] = [];

function chart(parent: HTMLElement, title: string, labels: string[]): Chart {
  const box = el('div', { class: 'chart' });
  box.append(el('div', { class: 'title' }, title));
  const host = el('div');
  box.append(host);
  parent.append(box);
  return { plot: null, host, labels, data: labels.map(() => []) };
}

function renderChart(c: Chart, stepped = false): void {
  const data = [times.slice(), ...c.data.map((d) => d.slice())] as UPlot.AlignedData;
  if (c.plot !== null && c.plot.series.length === c.labels.length + 1) {
    c.plot.setData(data);
    return;
  }
  c.plot?.destroy();
  const width = Math.max(260, Math.floor(c.host.parentElement?.clientWidth ?? 280) - 4);
  c.plot = new uPlot(
    {
      width,
      height: 120,
      legend: { show: true, live: false },
      cursor: { show: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { size: 24, font: '11px system-ui' },
        { size: 48, font: '11px system-ui', values: (_u, ticks) => ticks.map(short) },
      ],
      series: [
        {},
        ...c.labels.map((label, i) => ({
          label,
          stroke: c.labels.length === 1 && label === 'pkt/s' ? '#2e6cdf' : COLORS[i % COLORS.length],
          width: 1.5,
          points: { show: false },
          ...(stepped ? { paths: uPlot.paths.stepped?.({ align: 1 }) } : {}),
        })),
      ],
    },
    data,
    c.host,
  );
}

function nfCard(nf: HostStatus['nfs'][number]): NfView {
  const card = el('section', { class: 'nf', 'data-nf': nf.name });
  const title = el('h3');
  title.append(el('span', {}, nf.name));
  title.append(
    el(
      'span',
      { class: 'meta' },
      `${nf.image} · ${nf.vnic} · ${nf.placement} · ${nf.replicas} replica${nf.replicas === 1 ? '' : 's'}`,
    ),
  );
  const quarantined = el('span', { class: 'badge hidden', 'data-field': 'quarantined' }, 'quarantined');
  title.append(quarantined);
  card.append(title);

  const numbers = el('div', { class: 'numbers' });
  const field = (label: string, name: string): HTMLElement => {
    const span = el('span');
    const value = el('b', { 'data-field': name, 'data-value': '0' }, '–');
    span.append(value, document.createTextNode(` ${label}`));
    numbers.append(span);
    return value;
  };
  const pps = field('pkt/s', 'pps');
  const drops = field('drops/s', 'drops');
  const restarts = field('restarts', 'restarts');
  setValue(restarts, nf.restarts, String(nf.restarts));
  card.append(numbers);

  const actions = el('div', { class: 'actions' });
  const restart = el('button', { class: 'primary', 'data-action': 'restart', type: 'button' }, 'Restart');
  actions.append(restart);
  const replicas = el('input', {
    type: 'number',
    min: '1',
    max: '64',
    value: String(nf.replicas),
    'data-field': 'replicas-input',
    title: 'replicas',
  });
  const scale = el(
    'button',
    { type: 'button', 'data-action': 'scale', title: 'run this many replicas' },
    'Scale',
  );
  const drain = el(
    'button',
    { type: 'button', 'data-action': 'drain', title: 'take out of service once what it holds is through' },
    'Drain',
  );
  actions.append(replicas, scale, drain);
  const note = el('span', { class: 'note', 'data-field': 'note' });
  actions.append(note);
  card.append(actions);

  const charts = el('div', { class: 'charts' });
  card.append(charts);
  const view: NfView = {
    card,
    pps,
    drops,
    restarts,
    quarantined,
    note,
    restart,
    scale,
    drain,
    replicas,
    rate: chart(charts, 'packets/s', ['pkt/s']),
    dropChart: chart(charts, 'drops/s by reason', []),
    latency: chart(charts, 'latency µs (host, all chains)', ['p50', 'p99']),
    restartChart: chart(charts, 'restarts', ['restarts']),
    awaiting: null,
  };
  restart.addEventListener('click', () => void restartNf(nf.name, view));
  scale.addEventListener('click', () => void reconfigureNf(nf.name, view, 'scale'));
  drain.addEventListener('click', () => void reconfigureNf(nf.name, view, 'drain'));
  return view;
}

/** Scale or drain: a live reconfiguration on the host; the card is rebuilt when the status changes. */
async function reconfigureNf(name: string, view: NfView, action: 'scale' | 'drain'): Promise<void> {
  const replicas = Number(view.replicas.value);
  if (action === 'scale' && !(Number.isInteger(replicas) && replicas >= 1 && replicas <= 64)) {
    view.note.textContent = 'replicas: a whole number from 1 to 64';
    return;
  }
  view.scale.disabled = true;
  view.drain.disabled = true;
  view.note.textContent = action === 'scale' ? `scaling to ${replicas}…` : 'draining…';
  try {
    const reply = await api<{ drainMs: number; lostInDrain: number }>(
      `v1/nfs/${encodeURIComponent(name)}/${action}`,
      {
        method: 'POST',
        body: action === 'scale' ? { replicas, reason: 'dashboard' } : { reason: 'dashboard' },
      },
    );
    view.note.textContent =
      (action === 'scale' ? `scaled to ${replicas}` : 'drained; Restart brings it back') +
      ` (old copies drained in ${Math.round(reply.drainMs)} ms, ${reply.lostInDrain} lost)`;
  } catch (e) {
    const error = e as ApiError;
    view.note.textContent =
      error.status === 403
        ? `${action === 'scale' ? 'scaling' : 'draining'} needs the operator role`
        : `${action} refused: ${error.message}`;
  } finally {
    view.scale.disabled = false;
    view.drain.disabled = false;
  }
}

async function restartNf(name: string, view: NfView): Promise<void> {
  view.restart.disabled = true;
  view.note.textContent = 'restarting…';
  try {
    const reply = await api<{ restartsBefore: number }>(`v1/nfs/${encodeURIComponent(name)}/restart`, {
      method: 'POST',
      body: { reason: 'dashboard' },
    });
    view.awaiting = reply.restartsBefore;
    view.note.textContent = `restart requested (restarts were ${reply.restartsBefore})`;
  } catch (e) {
    view.restart.disabled = false;
    const error = e as ApiError;
    view.note.textContent =
      error.status === 403 ? 'restarting needs the operator role' : `restart refused: ${error.message}`;
  }
}

function buildCards(status: HostStatus): void {
  const root = byId('nfs');
  for (const view of views.values())
    for (const c of [view.rate, view.dropChart, view.latency, view.restartChart]) c.plot?.destroy();
  views.clear();
  times.length = 0;
  root.replaceChildren();
  for (const nf of status.nfs) {
    const view = nfCard(nf);
    views.set(nf.name, view);
    root.append(view.card);
  }
}

function push(series: number[], value: number): void {
  series.push(value);
  if (series.length > WINDOW) series.shift();
}

function updateCards(rates: Rates): void {
  push(times, Date.now() / 1000);
  const byName = new Map<string, NfRates>(rates.nfs.map((nf) => [nf.name, nf]));
  for (const [name, view] of views) {
    const nf = byName.get(name);
    const pps = nf?.pps ?? 0;
    const dropsPerSecond = sum(nf?.drops ?? {});
    setValue(view.pps, pps, short(pps));
    setValue(view.drops, dropsPerSecond, short(dropsPerSecond));
    if (nf !== undefined) {
      setValue(view.restarts, nf.restarts, String(nf.restarts));
      view.quarantined.classList.toggle('hidden', !nf.quarantined);
      view.restart.title = nf.quarantined ? 'quarantined: the host does not restart it' : '';
      if (view.awaiting !== null && nf.restarts > view.awaiting) {
        view.awaiting = null;
        view.restart.disabled = false;
        view.note.textContent = `restarted (${nf.restarts} so far)`;
      }
      if (nf.quarantined) view.restart.disabled = true;
    }
    push(view.rate.data[0], pps);
    // Drops by reason: a reason seen once keeps its series (zeros before it appeared).
    const reasons = Object.keys(nf?.drops ?? {});
    for (const reason of reasons)
      if (!view.dropChart.labels.includes(reason)) {
        view.dropChart.labels.push(reason);
        view.dropChart.data.push(times.slice(0, -1).map(() => 0));
      }
    view.dropChart.labels.forEach((reason, i) => push(view.dropChart.data[i], nf?.drops[reason] ?? 0));
    push(view.latency.data[0], rates.latencyUs.p50);
    push(view.latency.data[1], rates.latencyUs.p99);
    push(view.restartChart.data[0], nf?.restarts ?? 0);
    renderChart(view.rate);
    renderChart(view.dropChart);
    renderChart(view.latency);
    renderChart(view.restartChart, true);
  }
}

// ---- header ----

function updateHeader(rates: Rates | null, status: HostStatus | null): void {
  if (rates !== null) {
    setValue(byId('rx'), rates.received, `${short(rates.received)} pkt/s`);
    setValue(byId('tx'), rates.sent, `${short(rates.sent)} pkt/s`);
    setValue(byId('dropped'), rates.dropped, `${short(rates.dropped)}/s`);
    setValue(byId('lost'), rates.lost, `${short(rates.lost)}/s`);
    byId('latency').textContent = `${short(rates.latencyUs.p50)} / ${short(rates.latencyUs.p99)} µs`;
  }
  if (status !== null) {
    byId('uptime').textContent = `${status.seconds.toFixed(0)} s${status.running ? '' : ' (stopped)'}`;
    byId('pool').textContent = `${status.poolFree} / ${status.poolSlots}`;
  }
}

// ---- data flow ----

let lastStatus: HostStatus | null = null;
let lastRates: Rates | null = null;
let lastEventAt = 0;

function structureKey(status: HostStatus): string {
  return JSON.stringify([
    status.chains,
    status.nfs.map((nf) => [nf.name, nf.image, nf.vnic, nf.placement, nf.replicas]),
    Object.keys(status.ports),
  ]);
}

function applyStatus(status: HostStatus): void {
  lastStatus = status;
  const key = structureKey(status);
  if (key !== graph.key) {
    graph.key = key;
    drawGraph(status);
    buildCards(status);
  }
  updateGraph(lastRates, status);
  updateHeader(null, status);
}

function applyRates(rates: Rates): void {
  lastRates = rates;
  lastEventAt = performance.now();
  updateHeader(rates, null);
  updateGraph(rates, lastStatus);
  updateCards(rates);
  document.body.setAttribute(
    'data-updates',
    String(Number(document.body.getAttribute('data-updates') ?? 0) + 1),
  );
}

function setLive(state: 'on' | 'off' | 'connecting', text: string): void {
  const live = byId('live');
  live.className = state;
  live.textContent = text;
}

function showError(message: string): void {
  byId('error').textContent = message;
}

/** Reads `v1/stream` (Server-Sent Events) until it ends or fails. */
async function readStream(signal: AbortSignal): Promise<void> {
  const response = await fetch('v1/stream', {
    headers: { authorization: `Bearer ${token ?? ''}`, accept: 'text/event-stream' },
    cache: 'no-store',
    signal,
  });
  if (!response.ok || response.body === null) {
    const body = (await response.json().catch(() => null)) as { code?: string; message?: string } | null;
    throw new ApiError(response.status, body?.code ?? 'NFV_ERR_HTTP', body?.message ?? response.statusText);
  }
  setLive('on', 'live');
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trim();
      }
      if (event === 'rates' && data !== '') applyRates(JSON.parse(data) as Rates);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let session: AbortController | null = null;

async function streamLoop(signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      await readStream(signal);
      setLive('off', 'stream ended');
    } catch (e) {
      if (signal.aborted) return;
      const error = e as ApiError;
      if (error.status === 401) return unauthorized(error.message);
      setLive('off', error.status === 503 ? 'too many streams' : 'reconnecting');
    }
    await sleep(1000);
  }
}

async function statusLoop(signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      applyStatus(await api<HostStatus>('v1/status', { signal }));
      showError('');
    } catch (e) {
      if (signal.aborted) return;
      const error = e as ApiError;
      if (error.status === 401) return unauthorized(error.message);
      showError(`status: ${error.message}`);
    }
    if (performance.now() - lastEventAt > 3000 && lastEventAt > 0) setLive('off', 'no data');
    await sleep(STATUS_EVERY_MS);
  }
}

function unauthorized(message: string): void {
  session?.abort();
  session = null;
  sessionStorage.removeItem(TOKEN_KEY);
  setLive('off', 'no token');
  askForToken(message);
}

async function start(): Promise<void> {
  session?.abort();
  const controller = new AbortController();
  session = controller;
  setLive('connecting', 'connecting');
  try {
    applyStatus(await api<HostStatus>('v1/status', { signal: controller.signal }));
  } catch (e) {
    const error = e as ApiError;
    if (error.status === 401) return unauthorized(error.message);
    showError(`status: ${error.message}`);
  }
  byId('login').classList.add('hidden');
  void streamLoop(controller.signal);
  void statusLoop(controller.signal);
}

byId<HTMLFormElement>('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = byId<HTMLInputElement>('token').value.trim();
  if (value === '') return;
  sessionStorage.setItem(TOKEN_KEY, value);
  token = value;
  byId<HTMLInputElement>('token').value = '';
  void start();
});

// A link with a new #token= on an open page (no reload) switches to that token.
window.addEventListener('hashchange', () => {
  if (!new URLSearchParams(location.hash.slice(1)).has('token')) return;
  token = readToken();
  if (token !== null) void start();
});

token = readToken();
if (token === null) askForToken();
else void start();
