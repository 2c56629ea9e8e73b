// DOM helpers. Every value is put into the page as text (text nodes, attributes, DOM nodes):
// nothing here, or anywhere in the UI, parses data as HTML.

/** Create an element: h('button', {type: 'button', onclick: fn}, 'Label', child…). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = value;
    } else if (name === 'value' || name === 'checked' || name === 'selected') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An SVG element (for the usage chart). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let ids = 0;
/** A unique id for label/input pairs. */
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled form field: the label is bound to the input by id. */
export function field(label, input, help) {
  const id = input.id || uid();
  input.id = id;
  let helpEl = null;
  if (help) {
    helpEl = h('small', { class: 'help', id: `${id}-help` }, help);
    input.setAttribute('aria-describedby', helpEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, helpEl);
}

/** A status line: kind is 'loading', 'error', 'empty' or 'ok'. */
export function notice(kind, text) {
  const attrs = { class: `notice ${kind}` };
  if (kind === 'error') attrs.role = 'alert';
  else attrs.role = 'status';
  return h('p', attrs, text);
}

/** A table from column definitions [{label, value: row => node|string, class}] and rows. */
export function table(columns, rows, caption) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
      h(
        'tbody',
        {},
        rows.map((row) =>
          h('tr', {}, columns.map((c) => h('td', { class: c.class, 'data-label': c.label }, c.value(row)))),
        ),
      ),
    ),
  );
}

export function money(value) {
  const n = Number(value || 0);
  if (n === 0) return '$0';
  if (Math.abs(n) < 0.01) return `$${n.toPrecision(2)}`;
  return `$${n.toFixed(2)}`;
}

export function count(value) {
  return Number(value || 0).toLocaleString('en-US');
}

/** An ISO time as "YYYY-MM-DD HH:MM" (UTC), or the fallback. */
export function when(iso, fallback = '—') {
  if (!iso) return fallback;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().slice(0, 16).replace('T', ' ');
}

/** Today's date (UTC) minus `days`, as YYYY-MM-DD. */
export function dayOffset(days) {
  const d = new Date(Date.now() - days * 86_400_000);
  return d.toISOString().slice(0, 10);
}

/** A modal confirmation. Resolves true when confirmed. */
export function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', {}, text),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', onclick: () => dialog.close('confirm') }, confirmLabel),
      ),
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'confirm');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Comma-separated text as a list of trimmed, non-empty strings. */
export function list(text) {
  return String(text || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** "1 key", "3 keys". */
export function plural(n, word) {
  return `${count(n)} ${word}${Number(n) === 1 ? '' : 's'}`;
}

/**
 * A small "Delete" button: asks with `title` and `text`, runs `remove()`, reports the result in
 * `status`, then calls `done()`.
 */
export function deleteButton({ label, title, text, status, remove, done }) {
  return h(
    'button',
    {
      type: 'button',
      class: 'danger small',
      'aria-label': label,
      onclick: async () => {
        if (!(await confirmDialog(title, text, 'Delete'))) return;
        try {
          await remove();
          replace(status, notice('ok', 'Delete: done.'));
          done();
        } catch (e) {
          replace(status, notice('error', `Delete failed: ${e.message}`));
        }
      },
    },
    'Delete',
  );
}

/**
 * Fills `area` with the rows `fetchRows()` resolves to: a table captioned with their count of
 * `noun`, the `empty` notice when there are none, or an error notice naming `what`.
 */
export async function loadTable(area, { fetchRows, what, columns, noun, empty }) {
  let rows;
  try {
    rows = await fetchRows();
  } catch (e) {
    replace(area, notice('error', `Could not load the ${what}: ${e.message}. Reload the page to try again.`));
    return;
  }
  replace(area, rows.length ? table(columns, rows, plural(rows.length, noun)) : notice('empty', empty));
}

/** The rate and concurrency limits of a key, team or organization: "10 rpm, 1,000 tpm", or "—". */
export function limitsText(x) {
  const parts = [];
  if (x.rpm_limit != null) parts.push(`${count(x.rpm_limit)} rpm`);
  if (x.tpm_limit != null) parts.push(`${count(x.tpm_limit)} tpm`);
  if (x.max_parallel_requests != null) parts.push(`${count(x.max_parallel_requests)} parallel`);
  return parts.length ? parts.join(', ') : '—';
}
