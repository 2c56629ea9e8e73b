// Organizations: list, create, edit (models, budget, limits), members (add, remove, roles), the
// organization's teams and spend, delete. Proxy admins change; proxy admin viewers read.

import { api } from '../api.js';
import { count, deleteButton, field, h, limitsText, list, loadTable, money, notice, replace, table } from '../dom.js';
import { memberSection } from '../members.js';

const ORG_ROLES = ['internal_user', 'org_admin', 'internal_user_viewer'];

export function render(main, session) {
  const isAdmin = session.role === 'proxy_admin';
  const status = h('div', { class: 'status' });
  const formArea = h('div', { class: 'form-area' });
  const detail = h('div', { class: 'detail-area' });
  const listArea = h('div', { class: 'list' });
  let openOrg = null;

  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Organizations'),
      h('p', { class: 'lead' }, 'Organizations group teams and users under one budget and one list of models.'),
      isAdmin ? h('button', { type: 'button', onclick: () => showForm(null) }, 'Create organization') : null,
    ),
    formArea,
    status,
    detail,
    listArea,
  );

  const name = (o) => o.organization_alias || o.organization_id;


  function showForm(org) {
    const editing = Boolean(org);
    const alias = h('input', { name: 'organization_alias', value: org?.organization_alias || '', maxlength: '256', required: !editing });
    const models = h('input', { name: 'models', value: (org?.models || []).join(', '), placeholder: 'every model' });
    const budget = h('input', { name: 'max_budget', type: 'number', min: '0', step: 'any', placeholder: 'no limit', value: org?.max_budget ?? '' });
    const rpm = h('input', { name: 'rpm_limit', type: 'number', min: '0', step: '1', placeholder: 'no limit', value: org?.rpm_limit ?? '' });
    const tpm = h('input', { name: 'tpm_limit', type: 'number', min: '0', step: '1', placeholder: 'no limit', value: org?.tpm_limit ?? '' });
    const formStatus = h('div', { class: 'status' });
    const submit = h('button', { type: 'submit' }, editing ? 'Save' : 'Create');
    const number = (input, key, body) => {
      if (input.value !== '') body[key] = Number(input.value);
      else if (editing && org[key] != null) body[key] = null;
    };
    replace(
      formArea,
      h(
        'form',
        {
          class: 'card',
          'aria-labelledby': 'org-form-title',
          onsubmit: async (ev) => {
            ev.preventDefault();
            const body = {};
            if (editing) body.organization_id = org.organization_id;
            if (alias.value.trim()) body.organization_alias = alias.value.trim();
            body.models = list(models.value);
            number(budget, 'max_budget', body);
            number(rpm, 'rpm_limit', body);
            number(tpm, 'tpm_limit', body);
            submit.disabled = true;
            replace(formStatus, notice('loading', editing ? 'Saving…' : 'Creating the organization…'));
            try {
              const saved = await api(editing ? 'PATCH' : 'POST', editing ? '/organization/update' : '/organization/new', body);
              replace(formArea);
              replace(status, notice('ok', `Organization ${name(saved)} ${editing ? 'saved' : 'created'}.`));
              await load();
              if (editing) open(org.organization_id);
            } catch (e) {
              replace(formStatus, notice('error', `${editing ? 'Not saved' : 'The organization was not created'}: ${e.message}`));
            } finally {
              submit.disabled = false;
            }
          },
        },
        h('h2', { id: 'org-form-title' }, editing ? `Edit organization ${name(org)}` : 'Create organization'),
        h(
          'div',
          { class: 'grid' },
          field('Organization name', alias),
          field('Organization models', models, 'Comma-separated; empty: every model.'),
          field('Organization budget', budget, 'USD over everything in the organization.'),
          field('Organization RPM limit', rpm),
          field('Organization TPM limit', tpm),
        ),
        formStatus,
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => replace(formArea) }, 'Cancel'), submit),
      ),
    );
    alias.focus();
  }

  async function open(orgId) {
    openOrg = orgId;
    replace(detail, notice('loading', 'Loading the organization…'));
    let o;
    let teams;
    try {
      [o, teams] = await Promise.all([
        api('GET', '/organization/info', null, { organization_id: orgId }),
        api('GET', '/team/list', null, { organization_id: orgId }),
      ]);
    } catch (e) {
      replace(detail, notice('error', `Could not load organization ${orgId}: ${e.message}`));
      return;
    }
    const members = o.members || [];
    const memberNodes = memberSection({
      noun: 'organization',
      members,
      roles: ORG_ROLES,
      roleOf: (m) => m.user_role || 'internal_user',
      canManage: isAdmin,
      fieldPrefix: 'org_member',
      add: (userId, role) => api('POST', '/organization/member_add', { organization_id: orgId, member: { user_id: userId, role } }),
      update: (userId, role) => api('PATCH', '/organization/member_update', { organization_id: orgId, user_id: userId, role }),
      remove: (userId) => api('DELETE', '/organization/member_delete', { organization_id: orgId, user_id: userId }),
      removeText: (m) => `${m.user_id} leaves the organization.`,
      reload: async () => {
        await open(orgId);
        load();
      },
    });
    replace(
      detail,
      h(
        'section',
        { class: 'card detail', 'aria-labelledby': 'org-title' },
        h(
          'div',
          { class: 'detail-head' },
          h('h2', { id: 'org-title' }, `Organization ${name(o)}`),
          h(
            'div',
            { class: 'row-actions' },
            isAdmin ? h('button', { type: 'button', class: 'secondary small', onclick: () => showForm(o) }, 'Edit organization') : null,
            h('button', { type: 'button', class: 'secondary small', onclick: () => { openOrg = null; replace(detail); } }, 'Close'),
          ),
        ),
        h(
          'div',
          { class: 'stats' },
          h('div', { class: 'stat' }, h('span', { class: 'label' }, 'Spend'), h('span', { class: 'value' }, money(o.spend))),
          h('div', { class: 'stat' }, h('span', { class: 'label' }, 'Budget'), h('span', { class: 'value' }, o.max_budget == null ? '∞' : money(o.max_budget))),
          h('div', { class: 'stat' }, h('span', { class: 'label' }, 'Members'), h('span', { class: 'value' }, count(members.length))),
          h('div', { class: 'stat' }, h('span', { class: 'label' }, 'Teams'), h('span', { class: 'value' }, count((teams || []).length))),
        ),
        h('p', {}, `Organization id: ${o.organization_id}. Models: ${(o.models || []).length ? o.models.join(', ') : 'every model'}. Limits: ${limitsText(o)}.`),
        memberNodes,
        h('h3', {}, 'Teams of this organization'),
        (teams || []).length
          ? table(
              [
                { label: 'Team', value: (t) => t.team_alias || t.team_id },
                { label: 'Spend / budget', class: 'num', value: (t) => `${money(t.spend)} / ${t.max_budget == null ? '∞' : money(t.max_budget)}` },
              ],
              teams,
            )
          : notice('empty', 'No team in this organization. A team joins one with organization_id on /team/new or /team/update.'),
      ),
    );
  }

  const columns = [
    { label: 'Organization', value: name },
    { label: 'Organization id', value: (o) => h('code', {}, o.organization_id) },
    { label: 'Members', class: 'num', value: (o) => count((o.members || []).length) },
    { label: 'Models', value: (o) => ((o.models || []).length ? o.models.join(', ') : 'all') },
    { label: 'Spend / budget', class: 'num', value: (o) => `${money(o.spend)} / ${o.max_budget == null ? '∞' : money(o.max_budget)}` },
    { label: 'Limits', value: limitsText },
    {
      label: 'Actions',
      value: (o) =>
        h(
          'div',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary small', 'aria-label': `Open organization ${name(o)}`, onclick: () => open(o.organization_id) }, 'Open'),
          isAdmin
            ? deleteButton({
                label: `Delete organization ${name(o)}`,
                title: 'Delete organization?',
                text: `Organization ${name(o)} is deleted; its members stay as users.`,
                status,
                remove: () => api('DELETE', '/organization/delete', { organization_ids: [o.organization_id] }),
                done: () => {
                  if (openOrg === o.organization_id) replace(detail);
                  load();
                },
              })
            : null,
        ),
    },
  ];

  function load() {
    return loadTable(listArea, {
      fetchRows: () => api('GET', '/organization/list'),
      what: 'organizations',
      columns,
      noun: 'organization',
      empty: isAdmin ? 'No organizations yet. Use "Create organization" to add one.' : 'No organizations yet.',
    });
  }

  load();
}
