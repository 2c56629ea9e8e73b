// Keys: list (search, paging), create (the new key shown once), block / unblock, regenerate,
// delete. Internal users see and manage only their own keys: /key/list answers only those.

import { api } from '../api.js';
import { confirmDialog, field, h, limitsText, list, money, notice, plural, replace, table, when } from '../dom.js';

const PAGE_SIZE = 25;

export function render(main, session) {
  const isAdmin = session.role === 'proxy_admin';
  const canWrite = isAdmin || session.role === 'internal_user';
  const state = { page: 1, search: '' };

  const status = h('div', { class: 'status' });
  const listArea = h('div', { class: 'list' });
  const pager = h('div', { class: 'pager' });
  const reveal = h('div', { class: 'reveal-area' });
  const formArea = h('div', { class: 'form-area' });

  // Search: the API matches any part of the alias, the key name (sk-…abcd) or the owner's user
  // id, ignoring case, and pages the matches.
  const searchInput = h('input', { type: 'search', name: 'search', placeholder: 'alias, sk-…abcd or owner', maxlength: '256' });
  const searchForm = h(
    'form',
    {
      class: 'toolbar',
      role: 'search',
      onsubmit: (ev) => {
        ev.preventDefault();
        state.search = searchInput.value.trim();
        state.page = 1;
        load();
      },
    },
    h('div', { class: 'wide' }, field('Search keys', searchInput, 'Part of an alias, key name (sk-…abcd) or owner; any case.')),
    h('button', { type: 'submit', class: 'secondary' }, 'Search'),
    h(
      'button',
      {
        type: 'button',
        class: 'secondary',
        onclick: () => {
          searchInput.value = '';
          state.search = '';
          state.page = 1;
          load();
        },
      },
      'Clear',
    ),
  );

  const createButton = canWrite
    ? h('button', { type: 'button', onclick: () => showCreate() }, 'Create key')
    : null;

  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Keys'),
      h('p', { class: 'lead' }, isAdmin ? 'Every virtual key of the gateway.' : 'Your virtual keys.'),
      createButton,
    ),
    reveal,
    formArea,
    searchForm,
    status,
    listArea,
    pager,
  );

  function showKey(title, key) {
    const code = h('code', { class: 'secret', tabindex: '0' }, key);
    const copied = h('span', { class: 'copied', role: 'status' });
    replace(
      reveal,
      h(
        'section',
        { class: 'reveal', 'aria-labelledby': 'reveal-title' },
        h('h2', { id: 'reveal-title' }, title),
        h('p', {}, 'Copy this key now: it is shown only once. The gateway keeps only its hash.'),
        h(
          'div',
          { class: 'secret-row' },
          code,
          h(
            'button',
            {
              type: 'button',
              onclick: async () => {
                try {
                  await navigator.clipboard.writeText(key);
                  copied.textContent = 'Copied.';
                } catch {
                  const range = document.createRange();
                  range.selectNodeContents(code);
                  const sel = window.getSelection();
                  sel.removeAllRanges();
                  sel.addRange(range);
                  copied.textContent = 'Selected: press Ctrl+C to copy.';
                }
              },
            },
            'Copy',
          ),
          copied,
        ),
        h('button', { type: 'button', class: 'secondary small', onclick: () => replace(reveal) }, 'Done'),
      ),
    );
    reveal.scrollIntoView({ block: 'nearest' });
  }

  async function showCreate() {
    const alias = h('input', { name: 'key_alias', maxlength: '256' });
    const models = h('input', { name: 'models', placeholder: 'all models the owner may use' });
    const budget = h('input', { name: 'max_budget', type: 'number', min: '0', step: 'any', placeholder: 'no limit' });
    const rpm = h('input', { name: 'rpm_limit', type: 'number', min: '0', step: '1', placeholder: 'no limit' });
    const tpm = h('input', { name: 'tpm_limit', type: 'number', min: '0', step: '1', placeholder: 'no limit' });
    const duration = h('input', { name: 'duration', placeholder: 'never expires', pattern: '\\d+[smhdwy]|\\d+mo' });
    const teamList = h('datalist', { id: 'team-options' });
    const team = h('input', { name: 'team_id', list: 'team-options', placeholder: 'no team' });
    const formStatus = h('div', { class: 'status' });
    const modelHelp = h('span', {}, 'Comma-separated model names; empty allows every model the owner may use.');
    const submit = h('button', { type: 'submit' }, 'Create');
    const form = h(
      'form',
      {
        class: 'card create',
        'aria-labelledby': 'create-title',
        onsubmit: async (ev) => {
          ev.preventDefault();
          const body = {};
          if (alias.value.trim()) body.key_alias = alias.value.trim();
          const m = list(models.value);
          if (m.length) body.models = m;
          if (budget.value !== '') body.max_budget = Number(budget.value);
          if (rpm.value !== '') body.rpm_limit = Number(rpm.value);
          if (tpm.value !== '') body.tpm_limit = Number(tpm.value);
          if (duration.value.trim()) body.duration = duration.value.trim();
          if (team.value.trim()) body.team_id = team.value.trim();
          submit.disabled = true;
          replace(formStatus, notice('loading', 'Creating the key…'));
          try {
            const created = await api('POST', '/key/generate', body);
            replace(formArea);
            showKey(`Key ${created.key_alias || created.key_name} created`, created.key);
            state.page = 1;
            load();
          } catch (e) {
            replace(formStatus, notice('error', `The key was not created: ${e.message}`));
          } finally {
            submit.disabled = false;
          }
        },
      },
      h('h2', { id: 'create-title' }, 'Create key'),
      h(
        'div',
        { class: 'grid' },
        field('Key alias', alias, 'A name to find the key by; unique.'),
        field('Models', models, modelHelp),
        field('Max budget', budget, 'USD; the key is refused once it has spent this.'),
        field('RPM limit', rpm, 'Requests per minute.'),
        field('TPM limit', tpm, 'Tokens per minute.'),
        field('Duration', duration, 'How long the key lives: 30m, 12h, 30d…'),
        field('Team', team, 'Team id; the team’s models and budget then apply too.'),
      ),
      teamList,
      formStatus,
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => replace(formArea) }, 'Cancel'),
        submit,
      ),
    );
    replace(formArea, form);
    alias.focus();
    // Suggestions: the models and teams this user may use (best effort).
    api('GET', '/v1/models')
      .then((r) => {
        const names = (r.data || []).map((m) => m.id);
        if (names.length) modelHelp.textContent = `Comma-separated; empty allows every model the owner may use. Available: ${names.join(', ')}.`;
      })
      .catch(() => {});
    api('GET', '/team/list')
      .then((teams) => {
        replace(
          teamList,
          (teams || []).map((t) => h('option', { value: t.team_id }, t.team_alias || t.team_id)),
        );
      })
      .catch(() => {});
  }

  /** The edit form of a key: only what changed is sent to /key/update. Internal users may
   * change the alias and metadata of their own keys; the rest is a proxy admin's. */
  function showEdit(k) {
    const name = k.key_alias || k.key_name;
    const adminOnly = isAdmin ? null : 'Only a proxy admin changes this.';
    const text = ({ admin, ...attrs }, value) => h('input', { ...attrs, value: value ?? '', disabled: Boolean(admin) && !isAdmin });
    const alias = text({ name: 'key_alias', maxlength: '256' }, k.key_alias);
    const models = text({ name: 'models', placeholder: 'all models the owner may use', admin: true }, (k.models || []).join(', '));
    const budget = text({ name: 'max_budget', type: 'number', min: '0', step: 'any', placeholder: 'no limit', admin: true }, k.max_budget);
    const rpm = text({ name: 'rpm_limit', type: 'number', min: '0', step: '1', placeholder: 'no limit', admin: true }, k.rpm_limit);
    const tpm = text({ name: 'tpm_limit', type: 'number', min: '0', step: '1', placeholder: 'no limit', admin: true }, k.tpm_limit);
    const team = text({ name: 'team_id', placeholder: 'no team', admin: true }, k.team_id);
    const duration = text({ name: 'duration', placeholder: 'keep the current expiry', pattern: 'never|\\d+[smhdwy]|\\d+mo', admin: true }, '');
    const metadataText = k.metadata && Object.keys(k.metadata).length ? JSON.stringify(k.metadata) : '';
    const metadata = h('textarea', { name: 'metadata', rows: '2', placeholder: '{"project": "search"}' });
    metadata.value = metadataText;
    const formStatus = h('div', { class: 'status' });
    const submit = h('button', { type: 'submit' }, 'Save');
    const numberChange = (input, key, body) => {
      const was = k[key] ?? null;
      const now = input.value === '' ? null : Number(input.value);
      if (now !== was) body[key] = now;
    };
    const form = h(
      'form',
      {
        class: 'card edit',
        'aria-labelledby': 'edit-title',
        onsubmit: async (ev) => {
          ev.preventDefault();
          const body = { key: k.token };
          const a = alias.value.trim();
          if (a !== (k.key_alias || '')) body.key_alias = a || null;
          if (metadata.value.trim() !== metadataText) {
            if (metadata.value.trim() === '') {
              body.metadata = {};
            } else {
              try {
                const parsed = JSON.parse(metadata.value);
                if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
                body.metadata = parsed;
              } catch {
                replace(formStatus, notice('error', 'Metadata must be a JSON object, such as {"project": "search"}.'));
                return;
              }
            }
          }
          if (isAdmin) {
            const m = list(models.value);
            if (m.join(',') !== (k.models || []).join(',')) body.models = m;
            numberChange(budget, 'max_budget', body);
            numberChange(rpm, 'rpm_limit', body);
            numberChange(tpm, 'tpm_limit', body);
            const t = team.value.trim();
            if (t !== (k.team_id || '')) body.team_id = t || null;
            const d = duration.value.trim();
            if (d === 'never') body.duration = null;
            else if (d) body.duration = d;
          }
          if (Object.keys(body).length === 1) {
            replace(formStatus, notice('empty', 'Nothing changed.'));
            return;
          }
          submit.disabled = true;
          replace(formStatus, notice('loading', 'Saving…'));
          try {
            const saved = await api('POST', '/key/update', body);
            replace(formArea);
            replace(status, notice('ok', `Key ${saved.key_alias || saved.key_name} saved.`));
            load(false);
          } catch (e) {
            replace(formStatus, notice('error', `Not saved: ${e.message}`));
          } finally {
            submit.disabled = false;
          }
        },
      },
      h('h2', { id: 'edit-title' }, `Edit key ${name}`),
      h('p', { class: 'muted' }, `${k.key_name} · expires ${when(k.expires, 'never')}`),
      h(
        'div',
        { class: 'grid' },
        field('Key alias', alias, 'Empty removes the alias.'),
        field('Models', models, adminOnly || 'Comma-separated; empty allows every model the owner may use.'),
        field('Max budget', budget, adminOnly || 'USD; empty: no limit.'),
        field('RPM limit', rpm, adminOnly || 'Requests per minute; empty: no limit.'),
        field('TPM limit', tpm, adminOnly || 'Tokens per minute; empty: no limit.'),
        field('Team', team, adminOnly || 'Team id; empty: no team.'),
        field('Duration', duration, adminOnly || 'A new lifetime from now (30d, 12h…); "never" removes the expiry; empty keeps it.'),
        field('Metadata', metadata, 'A JSON object of your own labels.'),
      ),
      formStatus,
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => replace(formArea) }, 'Cancel'),
        submit,
      ),
    );
    replace(formArea, form);
    form.scrollIntoView({ block: 'nearest' });
    alias.focus();
  }

  async function act(what, path, body, done) {
    replace(status, notice('loading', `${what}…`));
    try {
      const result = await api('POST', path, body);
      replace(status, notice('ok', `${what}: done.`));
      if (done) done(result);
      load(false);
    } catch (e) {
      replace(status, notice('error', `${what} failed: ${e.message}`));
    }
  }

  function actions(k) {
    const name = k.key_alias || k.key_name;
    const buttons = [];
    if (isAdmin) {
      buttons.push(
        h(
          'button',
          {
            type: 'button',
            class: 'secondary small',
            'aria-label': `${k.blocked ? 'Unblock' : 'Block'} key ${name}`,
            onclick: () => act(k.blocked ? 'Unblock' : 'Block', k.blocked ? '/key/unblock' : '/key/block', { key: k.token }),
          },
          k.blocked ? 'Unblock' : 'Block',
        ),
      );
    }
    if (canWrite) {
      buttons.push(
        h(
          'button',
          {
            type: 'button',
            class: 'secondary small',
            'aria-label': `Edit key ${name}`,
            onclick: () => showEdit(k),
          },
          'Edit',
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'secondary small',
            'aria-label': `Regenerate key ${name}`,
            onclick: async () => {
              const ok = await confirmDialog(
                'Regenerate key?',
                `Key ${name} gets a new value; the old value stops working at once.`,
                'Regenerate',
              );
              if (ok) act('Regenerate', '/key/regenerate', { key: k.token }, (r) => showKey(`Key ${name} regenerated`, r.key));
            },
          },
          'Regenerate',
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'danger small',
            'aria-label': `Delete key ${name}`,
            onclick: async () => {
              const ok = await confirmDialog('Delete key?', `Key ${name} is deleted and stops working at once.`, 'Delete');
              if (ok) act('Delete', '/key/delete', { keys: [k.token] });
            },
          },
          'Delete',
        ),
      );
    }
    return h('div', { class: 'row-actions' }, buttons);
  }


  const columns = [
    { label: 'Alias', value: (k) => k.key_alias || h('span', { class: 'muted' }, 'no alias') },
    { label: 'Key', value: (k) => h('code', {}, k.key_name) },
    { label: 'Owner', value: (k) => k.user_id || '—' },
    { label: 'Team', value: (k) => k.team_id || '—' },
    { label: 'Models', value: (k) => ((k.models || []).length ? k.models.join(', ') : 'all') },
    {
      label: 'Spend / budget',
      class: 'num',
      value: (k) => `${money(k.spend)} / ${k.max_budget == null ? '∞' : money(k.max_budget)}`,
    },
    { label: 'Limits', value: limitsText },
    { label: 'Expires', value: (k) => when(k.expires, 'never') },
    {
      label: 'Status',
      value: (k) =>
        k.blocked ? h('span', { class: 'badge bad' }, 'Blocked') : h('span', { class: 'badge good' }, 'Active'),
    },
  ];
  if (canWrite || isAdmin) columns.push({ label: 'Actions', value: actions });

  async function load(showLoading = true) {
    if (showLoading) replace(status, notice('loading', 'Loading keys…'));
    const query = { page: state.page, size: PAGE_SIZE, return_full_object: true };
    if (state.search) query.search = state.search;
    let r;
    try {
      r = await api('GET', '/key/list', null, query);
    } catch (e) {
      replace(status, notice('error', `Could not load the keys: ${e.message}. Reload the page to try again.`));
      replace(listArea);
      replace(pager);
      return;
    }
    if (showLoading) replace(status);
    const keys = r.keys || [];
    if (!keys.length) {
      replace(
        listArea,
        notice(
          'empty',
          state.search
            ? `No key's alias, name or owner contains "${state.search}". Clear the search to see every key.`
            : canWrite
              ? 'No keys yet. Use "Create key" to make one.'
              : 'No keys yet. Ask an admin to create one for you.',
        ),
      );
    } else {
      replace(listArea, table(columns, keys, plural(r.total_count, 'key')));
    }
    const pages = Math.max(1, r.total_pages || 1);
    replace(
      pager,
      h(
        'button',
        {
          type: 'button',
          class: 'secondary small',
          disabled: state.page <= 1,
          onclick: () => {
            state.page -= 1;
            load();
          },
        },
        'Previous',
      ),
      h('span', {}, `Page ${state.page} of ${pages}`),
      h(
        'button',
        {
          type: 'button',
          class: 'secondary small',
          disabled: state.page >= pages,
          onclick: () => {
            state.page += 1;
            load();
          },
        },
        'Next',
      ),
    );
  }

  load();
}
