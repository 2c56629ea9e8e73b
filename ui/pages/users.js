// Users: list (by role, paged), create (with a UI password), edit (email, role, budget, password),
// block / unblock, delete with confirmation. Proxy admins change; proxy admin viewers read.

import { api } from '../api.js';
import { confirmDialog, field, h, money, notice, plural, replace, table, when } from '../dom.js';

const PAGE_SIZE = 25;
const ROLES = ['internal_user', 'internal_user_viewer', 'proxy_admin', 'proxy_admin_viewer', 'team', 'customer'];

function roleSelect(name, selected, withAny) {
  return h(
    'select',
    { name },
    withAny ? h('option', { value: '' }, 'Any role') : null,
    ROLES.map((r) => h('option', { value: r, selected: r === selected }, r.replaceAll('_', ' '))),
  );
}

export function render(main, session) {
  const isAdmin = session.role === 'proxy_admin';
  const state = { page: 1, role: '' };
  const status = h('div', { class: 'status' });
  const formArea = h('div', { class: 'form-area' });
  const listArea = h('div', { class: 'list' });
  const pager = h('div', { class: 'pager' });
  const roleFilter = roleSelect('role_filter', '', true);

  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Users'),
      h('p', { class: 'lead' }, 'Internal users: their role, budget and UI password. A user’s keys are on the Keys page (search by owner).'),
      isAdmin ? h('button', { type: 'button', onclick: () => showForm(null) }, 'Create user') : null,
    ),
    formArea,
    h(
      'form',
      {
        class: 'toolbar',
        onsubmit: (ev) => {
          ev.preventDefault();
          state.role = roleFilter.value;
          state.page = 1;
          load();
        },
      },
      field('Show role', roleFilter),
      h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
    ),
    status,
    listArea,
    pager,
  );

  /** The create form (user = null) or the edit form of a user. */
  function showForm(user) {
    const editing = Boolean(user);
    const id = h('input', { name: 'user_id', placeholder: 'generated when empty', maxlength: '256' });
    const email = h('input', { name: 'user_email', type: 'email', value: user?.user_email || '' });
    const role = roleSelect('user_role', user?.user_role || 'internal_user', false);
    const budget = h('input', {
      name: 'max_budget',
      type: 'number',
      min: '0',
      step: 'any',
      placeholder: 'no limit',
      value: user?.max_budget ?? '',
    });
    const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: '8' });
    const formStatus = h('div', { class: 'status' });
    const submit = h('button', { type: 'submit' }, editing ? 'Save' : 'Create');
    const title = editing ? `Edit user ${user.user_id}` : 'Create user';
    const form = h(
      'form',
      {
        class: 'card',
        'aria-labelledby': 'user-form-title',
        onsubmit: async (ev) => {
          ev.preventDefault();
          const body = { user_role: role.value };
          if (editing) body.user_id = user.user_id;
          else if (id.value.trim()) body.user_id = id.value.trim();
          if (email.value.trim()) body.user_email = email.value.trim();
          if (budget.value !== '') body.max_budget = Number(budget.value);
          else if (editing && user.max_budget != null) body.max_budget = null;
          if (password.value) body.password = password.value;
          if (!editing) body.auto_create_key = false;
          submit.disabled = true;
          replace(formStatus, notice('loading', editing ? 'Saving…' : 'Creating the user…'));
          try {
            const saved = await api('POST', editing ? '/user/update' : '/user/new', body);
            replace(formArea);
            replace(status, notice('ok', `User ${saved.user_id} ${editing ? 'saved' : 'created'}.`));
            load(false);
          } catch (e) {
            replace(formStatus, notice('error', `${editing ? 'Not saved' : 'The user was not created'}: ${e.message}`));
          } finally {
            submit.disabled = false;
          }
        },
      },
      h('h2', { id: 'user-form-title' }, title),
      h(
        'div',
        { class: 'grid' },
        editing ? null : field('User ID', id, 'The name the user signs in with.'),
        field('Email', email),
        field('Role', role, 'internal user: their own keys; viewer roles read only; proxy admin: everything.'),
        field('Max budget', budget, 'USD over all the user’s keys; empty: no limit.'),
        field(editing ? 'New password' : 'Password', password, editing ? 'Empty keeps the current one; a new one signs the user out.' : 'For signing in to this UI (8 characters or more); empty: the user cannot sign in.'),
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
    (editing ? email : id).focus();
  }

  async function act(what, path, body) {
    replace(status, notice('loading', `${what}…`));
    try {
      await api('POST', path, body);
      replace(status, notice('ok', `${what}: done.`));
      load(false);
    } catch (e) {
      replace(status, notice('error', `${what} failed: ${e.message}`));
    }
  }

  function actions(u) {
    if (!isAdmin) return '—';
    return h(
      'div',
      { class: 'row-actions' },
      h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit user ${u.user_id}`, onclick: () => showForm(u) }, 'Edit'),
      h(
        'button',
        {
          type: 'button',
          class: 'secondary small',
          'aria-label': `${u.blocked ? 'Unblock' : 'Block'} user ${u.user_id}`,
          onclick: () => act(u.blocked ? 'Unblock' : 'Block', '/user/update', { user_id: u.user_id, blocked: !u.blocked }),
        },
        u.blocked ? 'Unblock' : 'Block',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'danger small',
          'aria-label': `Delete user ${u.user_id}`,
          onclick: async () => {
            const ok = await confirmDialog(
              'Delete user?',
              `User ${u.user_id} and all their keys are deleted; the keys stop working at once.`,
              'Delete',
            );
            if (ok) act('Delete', '/user/delete', { user_ids: [u.user_id] });
          },
        },
        'Delete',
      ),
    );
  }

  const columns = [
    { label: 'User ID', value: (u) => u.user_id },
    { label: 'Email', value: (u) => u.user_email || '—' },
    { label: 'Role', value: (u) => String(u.user_role || 'internal_user').replaceAll('_', ' ') },
    { label: 'Teams', value: (u) => ((u.teams || []).length ? u.teams.join(', ') : '—') },
    { label: 'Spend / budget', class: 'num', value: (u) => `${money(u.spend)} / ${u.max_budget == null ? '∞' : money(u.max_budget)}` },
    { label: 'Created', value: (u) => when(u.created_at) },
    {
      label: 'Status',
      value: (u) => (u.blocked ? h('span', { class: 'badge bad' }, 'Blocked') : h('span', { class: 'badge good' }, 'Active')),
    },
    { label: 'Actions', value: actions },
  ];

  async function load(showLoading = true) {
    if (showLoading) replace(status, notice('loading', 'Loading users…'));
    let r;
    try {
      r = await api('GET', '/user/list', null, { page: state.page, page_size: PAGE_SIZE, role: state.role });
    } catch (e) {
      replace(status, notice('error', `Could not load the users: ${e.message}. Reload the page to try again.`));
      replace(listArea);
      replace(pager);
      return;
    }
    if (showLoading) replace(status);
    const users = r.users || [];
    replace(
      listArea,
      users.length
        ? table(columns, users, plural(r.total, 'user'))
        : notice('empty', state.role ? 'No user has this role. Choose "Any role" to see every user.' : isAdmin ? 'No users yet. Use "Create user" to add one.' : 'No users yet.'),
    );
    const pages = Math.max(1, r.total_pages || 1);
    replace(
      pager,
      h('button', { type: 'button', class: 'secondary small', disabled: state.page <= 1, onclick: () => { state.page -= 1; load(); } }, 'Previous'),
      h('span', {}, `Page ${state.page} of ${pages}`),
      h('button', { type: 'button', class: 'secondary small', disabled: state.page >= pages, onclick: () => { state.page += 1; load(); } }, 'Next'),
    );
  }

  load();
}
