// Logs: recent requests from the spend logs with filters (key, model, status, dates), a
// request's detail, and a live tail of requests as they finish (GET /logs/stream, admins).

import { api } from '../api.js';
import { count, dayOffset, field, h, money, notice, plural, replace, table, when } from '../dom.js';

const PAGE_SIZE = 50;
const LIVE_MAX = 200;

export function render(main, session) {
  const isAdmin = session.role === 'proxy_admin';
  const key = h('input', { name: 'api_key', placeholder: 'sk-… or its hash', autocomplete: 'off' });
  const model = h('input', { name: 'model', placeholder: 'any model' });
  const statusSel = h(
    'select',
    { name: 'status' },
    h('option', { value: '' }, 'Any'),
    h('option', { value: 'success' }, 'Success'),
    h('option', { value: 'failure' }, 'Failure'),
  );
  const from = h('input', { type: 'date', name: 'start_date', value: dayOffset(6) });
  const to = h('input', { type: 'date', name: 'end_date', value: dayOffset(0) });
  const status = h('div', { class: 'status' });
  const listArea = h('div', { class: 'list' });
  const pager = h('div', { class: 'pager' });
  const detail = h('div', { class: 'detail-area' });
  const live = h('div', { class: 'live-area' });
  let rows = [];
  let page = 1;
  let source = null;

  const liveButton = isAdmin
    ? h('button', { type: 'button', class: 'secondary', 'aria-pressed': 'false', onclick: () => toggleLive() }, 'Start live tail')
    : null;

  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Logs'),
      h('p', { class: 'lead' }, 'Requests recorded in the spend logs, newest first.'),
      liveButton,
    ),
    live,
    h(
      'form',
      {
        class: 'toolbar',
        onsubmit: (ev) => {
          ev.preventDefault();
          load();
        },
      },
      field('Key', key),
      field('Model', model),
      field('Status', statusSel),
      field('From', from),
      field('To', to),
      h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
      h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh'),
    ),
    status,
    detail,
    listArea,
    pager,
  );

  function showDetail(r) {
    const pairs = [
      ['Request id', r.request_id],
      ['Call id', r.litellm_call_id],
      ['Status', r.status],
      ['Call type', r.call_type],
      ['Model', r.model],
      ['Model group', r.model_group],
      ['Deployment', r.model_id],
      ['API base', r.api_base],
      ['Key alias', r.metadata?.user_api_key_alias],
      ['Key hash', r.api_key || 'master key'],
      ['User', r.user],
      ['Team', r.team_id],
      ['End user', r.end_user],
      ['Start', when(r.startTime)],
      ['Duration', `${count(r.request_duration_ms)} ms`],
      ['Tokens', `${count(r.prompt_tokens)} prompt + ${count(r.completion_tokens)} completion`],
      ['Spend', money(r.spend)],
      ['Cache hit', r.cache_hit],
      ['Client address', r.requester_ip_address],
      ['Tags', (r.request_tags || []).join(', ')],
    ];
    replace(
      detail,
      h(
        'section',
        { class: 'card detail', 'aria-labelledby': 'detail-title' },
        h(
          'div',
          { class: 'detail-head' },
          h('h2', { id: 'detail-title' }, 'Request detail'),
          h('button', { type: 'button', class: 'secondary small', onclick: () => replace(detail) }, 'Close'),
        ),
        h('dl', {}, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? '—' : String(v))])),
        h('h3', {}, 'Metadata'),
        h('pre', {}, JSON.stringify(r.metadata || {}, null, 2)),
        Object.keys(r.messages || {}).length
          ? [h('h3', {}, 'Messages'), h('pre', {}, JSON.stringify(r.messages, null, 2))]
          : h('p', { class: 'muted' }, 'Messages and responses are stored only with general_settings.store_prompts_in_spend_logs.'),
        Object.keys(r.response || {}).length ? [h('h3', {}, 'Response'), h('pre', {}, JSON.stringify(r.response, null, 2))] : null,
      ),
    );
    detail.scrollIntoView({ block: 'nearest' });
  }

  const columns = [
    { label: 'Time (UTC)', value: (r) => when(r.startTime) },
    {
      label: 'Status',
      value: (r) => h('span', { class: `badge ${r.status === 'success' ? 'good' : 'bad'}` }, r.status),
    },
    { label: 'Model', value: (r) => r.model_group || r.model },
    { label: 'Key', value: (r) => r.metadata?.user_api_key_alias || (r.api_key ? `${r.api_key.slice(0, 10)}…` : 'master key') },
    { label: 'User', value: (r) => r.user || '—' },
    { label: 'Team', value: (r) => r.team_id || '—' },
    { label: 'Tokens', class: 'num', value: (r) => count(r.total_tokens) },
    { label: 'Spend', class: 'num', value: (r) => money(r.spend) },
    { label: 'Duration', class: 'num', value: (r) => `${count(r.request_duration_ms)} ms` },
    {
      label: 'Detail',
      value: (r) =>
        h('button', { type: 'button', class: 'secondary small', 'aria-label': `Details of request ${r.litellm_call_id}`, onclick: () => showDetail(r) }, 'Details'),
    },
  ];

  function filtered() {
    const m = model.value.trim().toLowerCase();
    const s = statusSel.value;
    return rows.filter(
      (r) =>
        (!m || String(r.model || '').toLowerCase() === m || String(r.model_group || '').toLowerCase() === m) &&
        (!s || r.status === s),
    );
  }

  function show() {
    const visible = filtered();
    if (!visible.length) {
      replace(
        listArea,
        notice(
          'empty',
          rows.length
            ? 'No request matches these filters. Clear the model or status filter to see more.'
            : 'No requests in this range. Requests appear here a few seconds after they finish; widen the dates or make a request with a key.',
        ),
      );
      replace(pager);
      return;
    }
    const pages = Math.ceil(visible.length / PAGE_SIZE);
    page = Math.min(page, pages);
    replace(listArea, table(columns, visible.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE), plural(visible.length, 'request')));
    replace(
      pager,
      h('button', { type: 'button', class: 'secondary small', disabled: page <= 1, onclick: () => { page -= 1; show(); } }, 'Previous'),
      h('span', {}, `Page ${page} of ${pages}`),
      h('button', { type: 'button', class: 'secondary small', disabled: page >= pages, onclick: () => { page += 1; show(); } }, 'Next'),
    );
  }

  async function load() {
    if (from.value && to.value && from.value > to.value) {
      replace(status, notice('error', '"From" must not be after "To".'));
      return;
    }
    replace(status, notice('loading', 'Loading requests…'));
    try {
      rows = await api('GET', '/spend/logs', null, {
        api_key: key.value.trim(),
        start_date: from.value,
        end_date: to.value,
      });
    } catch (e) {
      replace(status, notice('error', `Could not load the logs: ${e.message}. Check the filters, or reload the page.`));
      return;
    }
    rows.sort((a, b) => String(b.startTime).localeCompare(String(a.startTime)));
    replace(status);
    page = 1;
    show();
  }

  function toggleLive() {
    if (source) {
      stopLive();
      return;
    }
    const feed = h('ol', { class: 'feed', 'aria-live': 'polite' });
    const liveStatus = h('p', { class: 'notice loading', role: 'status' }, 'Connecting…');
    replace(live, h('section', { class: 'card live' }, h('h2', {}, 'Live tail'), liveStatus, feed));
    source = new EventSource('/logs/stream');
    liveButton.textContent = 'Stop live tail';
    liveButton.setAttribute('aria-pressed', 'true');
    source.onopen = () => {
      liveStatus.className = 'notice ok';
      liveStatus.textContent = 'Connected: requests appear here as they finish.';
    };
    source.onerror = () => {
      liveStatus.className = 'notice error';
      liveStatus.textContent = 'The live tail is disconnected; it reconnects by itself. Only proxy admins may tail.';
    };
    source.onmessage = (ev) => {
      let e;
      try {
        e = JSON.parse(ev.data);
      } catch {
        return;
      }
      feed.prepend(
        h(
          'li',
          { class: e.status === 'success' ? 'ok' : 'failed' },
          h('span', { class: 'time' }, when(e.time)),
          h('span', { class: `badge ${e.status === 'success' ? 'good' : 'bad'}` }, `${e.status} ${e.status_code}`),
          h('span', {}, e.model_group || e.model),
          h('span', { class: 'muted' }, e.key_alias || ''),
          h('span', { class: 'num' }, `${count(e.latency_ms)} ms`),
          h('span', { class: 'num' }, money(e.cost)),
          e.error ? h('span', { class: 'error-text' }, typeof e.error === 'string' ? e.error : JSON.stringify(e.error)) : null,
        ),
      );
      while (feed.children.length > LIVE_MAX) feed.lastChild.remove();
    };
  }

  function stopLive() {
    if (source) source.close();
    source = null;
    if (liveButton) {
      liveButton.textContent = 'Start live tail';
      liveButton.setAttribute('aria-pressed', 'false');
    }
    replace(live);
  }

  load();
  return stopLive;
}
