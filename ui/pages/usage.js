// Usage: spend per day as a bar chart (hand-drawn SVG) and spend by key, model, team and end
// user, over a date range. From /global/spend/report (proxy admins and viewers).

import { api } from '../api.js';
import { count, dayOffset, field, h, money, notice, replace, svg, table } from '../dom.js';

const DAY = 86_400_000;

export function render(main) {
  const from = h('input', { type: 'date', name: 'start_date', value: dayOffset(29), required: true });
  const to = h('input', { type: 'date', name: 'end_date', value: dayOffset(0), required: true });
  const status = h('div', { class: 'status' });
  const body = h('div', { class: 'usage' });
  replace(
    main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Usage'), h('p', { class: 'lead' }, 'Spend recorded in the spend logs, by day (UTC).')),
    h(
      'form',
      {
        class: 'toolbar',
        onsubmit: (ev) => {
          ev.preventDefault();
          load();
        },
      },
      field('From', from),
      field('To', to),
      h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
    ),
    status,
    body,
  );

  async function load() {
    if (from.value > to.value) {
      replace(status, notice('error', '"From" must not be after "To".'));
      return;
    }
    replace(status, notice('loading', 'Loading usage…'));
    const range = { start_date: from.value, end_date: to.value };
    let byTeam, byKey, byCustomer, keyNames;
    try {
      [byTeam, byKey, byCustomer, keyNames] = await Promise.all([
        api('GET', '/global/spend/report', null, { ...range, group_by: 'team' }),
        api('GET', '/global/spend/report', null, { ...range, group_by: 'api_key' }),
        api('GET', '/global/spend/report', null, { ...range, group_by: 'customer' }),
        api('GET', '/global/spend/keys', null, { limit: 1000 }).catch(() => []),
      ]);
    } catch (e) {
      replace(status, notice('error', `Could not load usage: ${e.message}. Reload the page to try again.`));
      replace(body);
      return;
    }
    replace(status);
    const days = dailyTotals(byTeam, from.value, to.value);
    const total = days.reduce((s, d) => s + d.spend, 0);
    const requests = days.reduce((s, d) => s + d.requests, 0);
    const names = new Map((keyNames || []).map((k) => [k.api_key, k.key_alias || k.key_name]));
    const summary = h(
      'div',
      { class: 'stats' },
      stat('Spend', money(total)),
      stat('Requests', count(requests)),
      stat('Days', count(days.length)),
    );
    if (requests === 0) {
      replace(
        body,
        summary,
        chart(days),
        notice('empty', 'No requests in this range. Requests made with keys appear here a few seconds after they finish; widen the range to see older ones.'),
      );
      return;
    }
    replace(
      body,
      summary,
      chart(days),
      h(
        'div',
        { class: 'tables' },
        groupTable('Spend by key', 'Key', groups(byKey, 'api_keys', 'api_key'), (id) =>
          id === 'Unassigned' ? 'master key' : names.get(id) || `${id.slice(0, 10)}…`,
        ),
        groupTable('Spend by model', 'Model', modelGroups(byTeam)),
        groupTable('Spend by team', 'Team', groups(byTeam, 'teams', 'team_name'), (id) => (id === 'Unassigned' ? 'no team' : id)),
        groupTable('Spend by end user', 'End user', groups(byCustomer, 'customers', 'customer'), (id) =>
          id === 'Unassigned' ? 'none given' : id,
        ),
      ),
    );
  }

  load();
}

function stat(label, value) {
  return h('div', { class: 'stat' }, h('span', { class: 'label' }, label), h('span', { class: 'value' }, value));
}

/** One entry per day of the range (missing days are zero). */
function dailyTotals(report, start, end) {
  const byDay = new Map();
  for (const day of report || []) {
    let spend = 0;
    let requests = 0;
    for (const g of day.teams || []) {
      spend += g.total_spend || 0;
      for (const m of g.metadata || []) requests += m.api_requests || 0;
    }
    byDay.set(day.group_by_day, { spend, requests });
  }
  const out = [];
  for (let t = Date.parse(`${start}T00:00:00Z`); t <= Date.parse(`${end}T00:00:00Z`); t += DAY) {
    const date = new Date(t).toISOString().slice(0, 10);
    const v = byDay.get(date) || { spend: 0, requests: 0 };
    out.push({ date, ...v });
  }
  return out;
}

/** Spend, requests and tokens per group of a report, largest spend first. */
function groups(report, list, name) {
  const totals = new Map();
  for (const day of report || []) {
    for (const g of day[list] || []) {
      const id = g[name] ?? 'Unassigned';
      const t = totals.get(id) || { id, spend: 0, requests: 0, tokens: 0 };
      t.spend += g.total_spend || 0;
      for (const m of g.metadata || []) {
        t.requests += m.api_requests || 0;
        t.tokens += m.total_tokens || 0;
      }
      totals.set(id, t);
    }
  }
  return [...totals.values()].sort((a, b) => b.spend - a.spend || b.requests - a.requests);
}

function modelGroups(report) {
  const totals = new Map();
  for (const day of report || []) {
    for (const g of day.teams || []) {
      for (const m of g.metadata || []) {
        const id = m.model || 'unknown';
        const t = totals.get(id) || { id, spend: 0, requests: 0, tokens: 0 };
        t.spend += m.spend || 0;
        t.requests += m.api_requests || 0;
        t.tokens += m.total_tokens || 0;
        totals.set(id, t);
      }
    }
  }
  return [...totals.values()].sort((a, b) => b.spend - a.spend || b.requests - a.requests);
}

function groupTable(title, label, rows, name = (id) => id) {
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, title),
    rows.length
      ? table(
          [
            { label, value: (r) => name(r.id) },
            { label: 'Spend', class: 'num', value: (r) => money(r.spend) },
            { label: 'Requests', class: 'num', value: (r) => count(r.requests) },
            { label: 'Tokens', class: 'num', value: (r) => count(r.tokens) },
          ],
          rows,
        )
      : notice('empty', 'Nothing in this range.'),
  );
}

/** A bar chart of spend per day: SVG drawn here, no library. */
function chart(days) {
  const W = 960;
  const H = 260;
  const pad = { left: 64, right: 16, top: 16, bottom: 40 };
  const innerW = W - pad.left - pad.right;
  const innerH = H - pad.top - pad.bottom;
  const max = Math.max(...days.map((d) => d.spend), 0);
  const top = niceCeil(max);
  const slot = innerW / Math.max(days.length, 1);
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  const y = (v) => pad.top + innerH - (top > 0 ? (v / top) * innerH : 0);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * top);
  const labelEvery = Math.ceil(days.length / 10);
  const total = days.reduce((s, d) => s + d.spend, 0);
  return h(
    'figure',
    { class: 'card chart' },
    h('figcaption', {}, h('h2', {}, 'Spend per day')),
    svg(
      'svg',
      {
        viewBox: `0 0 ${W} ${H}`,
        role: 'img',
        'aria-label': `Spend per day from ${days[0]?.date} to ${days[days.length - 1]?.date}: ${money(total)} in total`,
        preserveAspectRatio: 'xMidYMid meet',
      },
      ticks.map((t) => [
        svg('line', { class: 'grid', x1: pad.left, x2: W - pad.right, y1: y(t), y2: y(t) }),
        svg('text', { class: 'axis', x: pad.left - 8, y: y(t) + 4, 'text-anchor': 'end' }, tick(t)),
      ]),
      days.map((d, i) => {
        const x = pad.left + i * slot + (slot - barW) / 2;
        const height = Math.max(d.spend > 0 ? 1 : 0, pad.top + innerH - y(d.spend));
        return svg(
          'rect',
          { class: 'bar', x, y: pad.top + innerH - height, width: barW, height, 'data-date': d.date },
          svg('title', {}, `${d.date}: ${money(d.spend)}, ${count(d.requests)} requests`),
        );
      }),
      days.map((d, i) =>
        i % labelEvery === 0
          ? svg('text', { class: 'axis', x: pad.left + i * slot + slot / 2, y: H - pad.bottom + 18, 'text-anchor': 'middle' }, d.date.slice(5))
          : null,
      ),
      svg('line', { class: 'baseline', x1: pad.left, x2: W - pad.right, y1: y(0), y2: y(0) }),
    ),
  );
}

/** An axis label: exact for the small round numbers the axis uses ($0.025, not $0.03). */
function tick(v) {
  if (v === 0) return '$0';
  return `$${Number(v.toPrecision(3))}`;
}

/** A round number at or above v for the axis. */
function niceCeil(v) {
  if (v <= 0) return 0;
  const exp = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * exp >= v) return m * exp;
  }
  return 10 * exp;
}
