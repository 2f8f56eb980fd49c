// Number, time and money formatting shared by the views.

const intFmt = new Intl.NumberFormat();

export const dash = "—";

export function fmtInt(n) {
  return n === null || n === undefined ? dash : intFmt.format(n);
}

export function fmtCompact(n) {
  if (n === null || n === undefined) return dash;
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${+(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? intFmt.format(n) : String(+n.toPrecision(3));
}

export function fmtCost(x) {
  if (x === null || x === undefined) return dash;
  if (x === 0) return "$0";
  if (Math.abs(x) >= 1) return `$${x.toFixed(2)}`;
  if (Math.abs(x) >= 0.01) return `$${+x.toFixed(4)}`;
  return `$${+x.toPrecision(3)}`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return dash;
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.round(ms)} ms`;
}

export function fmtPct(rate) {
  if (rate === null || rate === undefined) return dash;
  return `${(rate * 100).toFixed(rate >= 0.1 || rate === 0 ? 0 : 1)}%`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return dash;
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** Local time of an ISO timestamp: the time alone today, with the date otherwise. */
export function fmtTime(iso) {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});
  return today ? time : `${d.toLocaleDateString([], {month: "short", day: "numeric"})} ${time}`;
}

/** Label of a bucket start (epoch seconds) for a bucket size (seconds); ``sameDay``: leave the date out. */
export function fmtBucket(sec, interval, sameDay = false) {
  const d = new Date(sec * 1000);
  const date = d.toLocaleDateString([], {month: "short", day: "numeric"});
  if (interval >= 86400) return date;
  const time = d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  if (interval >= 3600 && !sameDay) return `${date} ${time}`;
  return time;
}

/** A latency percentile from an analytics entry: the store's latency_* fields, else duration_ms_*. */
export function latency(entry, p) {
  if (!entry) return null;
  const value = entry[`latency_${p}_ms`] ?? entry[`duration_ms_${p}`];
  return typeof value === "number" ? value : null;
}
