/**
 * The dashboard's one HTML page: a shell that ./client.ts fills in. It holds no data and no
 * token, so it is served without one (route-roles.ts PUBLIC_ROUTES). Asset and API URLs are
 * relative, so the page also works behind a proxy that mounts the control API under a prefix.
 */

const STYLE = `
:root { color-scheme: light; --fg: #1d2430; --muted: #667085; --line: #d0d5dd; --card: #fff;
  --bg: #f4f6f9; --ok: #12805c; --bad: #c4320a; --accent: #2e6cdf; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--fg);
  background: var(--bg); }
header { display: flex; gap: 1.5em; align-items: baseline; flex-wrap: wrap; padding: 0.8em 1.2em;
  background: #1d2430; color: #f4f6f9; }
header h1 { font-size: 1.1em; margin: 0; letter-spacing: 0.02em; }
header .stat { font-variant-numeric: tabular-nums; }
header .stat b { font-weight: 600; }
#live { padding: 0.1em 0.6em; border-radius: 1em; background: #475467; font-size: 0.85em; }
#live.on { background: var(--ok); }
#live.off { background: var(--bad); }
main { padding: 1em 1.2em; display: grid; gap: 1em; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 0.8em 1em; }
section h2 { font-size: 1em; margin: 0 0 0.5em; }
#graph svg { max-width: 100%; height: auto; display: block; }
#graph .node rect { fill: #eef4ff; stroke: var(--accent); stroke-width: 1.5; }
#graph .node.port rect { fill: #f2f4f7; stroke: #475467; }
#graph .node.down rect { fill: #fef3f2; stroke: var(--bad); }
#graph .node text { font-size: 13px; fill: var(--fg); }
#graph .node .name { font-weight: 600; }
#graph .node .drops { fill: var(--bad); font-size: 12px; }
#graph .edge line { stroke: #475467; stroke-width: 2; }
#graph .edge text { font-size: 12px; fill: var(--accent); font-variant-numeric: tabular-nums; }
#nfs { display: grid; gap: 1em; grid-template-columns: repeat(auto-fill, minmax(620px, 1fr)); }
.nf h3 { margin: 0; font-size: 1em; display: flex; gap: 0.6em; align-items: baseline; flex-wrap: wrap; }
.nf .meta { color: var(--muted); font-weight: normal; font-size: 0.9em; }
.nf .numbers { display: flex; gap: 1.5em; margin: 0.4em 0; font-variant-numeric: tabular-nums; }
.nf .numbers span b { font-size: 1.15em; }
.nf .badge { color: #fff; background: var(--bad); border-radius: 1em; padding: 0 0.6em; font-size: 0.8em; }
.nf .actions { display: flex; gap: 0.5em; align-items: center; margin: 0.4em 0; }
.nf .actions .note { color: var(--muted); font-size: 0.9em; }
.nf .actions input { font: inherit; width: 4em; padding: 0.2em; }
.nf .charts { display: grid; grid-template-columns: repeat(2, 1fr); gap: 0.4em; }
.nf .chart .title { font-size: 0.8em; color: var(--muted); }
button { font: inherit; padding: 0.25em 0.9em; border-radius: 6px; border: 1px solid var(--line);
  background: #fff; cursor: pointer; }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
button:disabled { opacity: 0.5; cursor: not-allowed; }
#login { max-width: 32em; }
#login input { font: inherit; width: 100%; padding: 0.4em; margin: 0.4em 0; }
.error { color: var(--bad); }
.hidden { display: none; }
`;

/** The HTML of GET /dashboard. */
export function dashboardPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>nfvisor dashboard</title>
<link rel="stylesheet" href="dashboard/uPlot.min.css">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>nfvisor</h1>
  <span id="live">connecting</span>
  <span class="stat">uptime <b id="uptime">–</b></span>
  <span class="stat">in <b id="rx">–</b></span>
  <span class="stat">out <b id="tx">–</b></span>
  <span class="stat">dropped <b id="dropped">–</b></span>
  <span class="stat">lost <b id="lost">–</b></span>
  <span class="stat">latency p50/p99 <b id="latency">–</b></span>
  <span class="stat">pool free <b id="pool">–</b></span>
</header>
<main>
  <section id="login" class="hidden">
    <h2>Token</h2>
    <p>Paste a control token (<code>nfvisor run FILE --control</code> prints one). It is kept in this
    tab only (sessionStorage) and sent as a bearer header on every call.</p>
    <form id="login-form"><input id="token" type="password" autocomplete="off" placeholder="token">
    <button class="primary" type="submit">Open</button></form>
    <p id="login-error" class="error"></p>
  </section>
  <section id="graph" class="hidden"><h2>Chains</h2><div id="chains"></div></section>
  <div id="nfs"></div>
  <p id="error" class="error"></p>
</main>
<script src="dashboard/uPlot.iife.min.js"></script>
<script type="module" src="dashboard/dashboard.js"></script>
</body>
</html>
`;
}
