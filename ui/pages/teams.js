// Teams: list, create, edit (models, budget, limits), members (add, remove, roles), a team's keys
// and spend, delete. Proxy admins manage every team; a team's own admins manage its members;
// other users see the teams they belong to.

import { api } from '../api.js';
import { count, deleteButton, field, h, limitsText, list, loadTable, money, notice, replace, table } from '../dom.js';
import { memberSection } from '../members.js';

export function render(main, session) {
  const isAdmin = session.role === 'proxy_admin';
  const status = h('div', { class: 'status' });
  const formArea = h('div', { class: 'form-area' });
  const detail = h('div', { class: 'detail-area' });
  const listArea = h('div', { class: 'list' });
  let openTeam = null;

  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Teams'),
      h('p', { class: 'lead' }, isAdmin ? 'Every team: members, models, budgets and their keys.' : 'The teams you belong to.'),
      isAdmin ? h('button', { type: 'button', onclick: () => showForm(null) }, 'Create team') : null,
    ),
    formArea,
    status,
    detail,
    listArea,
  );


  /** The create form (team = null) or the edit form of a team (proxy admins). */
  function showForm(team) {
    const editing = Boolean(team);
    const alias = h('input', { name: 'team_alias', value: team?.team_alias || '', maxlength: '256' });
    const models = h('input', { name: 'models', value: (team?.models || []).join(', '), placeholder: 'every model' });
    const budget = h('input', { name: 'max_budget', type: 'number', min: '0', step: 'any', placeholder: 'no limit', value: team?.max_budget ?? '' });
    const rpm = h('input', { name: 'rpm_limit', type: 'number', min: '0', step: '1', placeholder: 'no limit', value: team?.rpm_limit ?? '' });
    const tpm = h('input', { name: 'tpm_limit', type: 'number', min: '0', step: '1', placeholder: 'no limit', value: team?.tpm_limit ?? '' });
    const formStatus = h('div', { class: 'status' });
    const submit = h('button', { type: 'submit' }, editing ? 'Save' : 'Create');
    const number = (input, name, body) => {
      if (input.value !== '') body[name] = Number(input.value);
      else if (editing && team[name] != null) body[name] = null;
    };
    const form = h(
      'form',
      {
        class: 'card',
        'aria-labelledby': 'team-form-title',
        onsubmit: async (ev) => {
          ev.preventDefault();
          const body = {};
          if (editing) body.team_id = team.team_id;
          if (alias.value.trim()) body.team_alias = alias.value.trim();
          body.models = list(models.value);
          number(budget, 'max_budget', body);
          number(rpm, 'rpm_limit', body);
          number(tpm, 'tpm_limit', body);
          submit.disabled = true;
          replace(formStatus, notice('loading', editing ? 'Saving…' : 'Creating the team…'));
          try {
            const saved = await api('POST', editing ? '/team/update' : '/team/new', body);
            replace(formArea);
            const name = saved.team_alias || saved.data?.team_alias || saved.team_id;
            replace(status, notice('ok', `Team ${name} ${editing ? 'saved' : 'created'}.`));
            await load();
            if (editing) open(team.team_id);
          } catch (e) {
            replace(formStatus, notice('error', `${editing ? 'Not saved' : 'The team was not created'}: ${e.message}`));
          } finally {
            submit.disabled = false;
          }
        },
      },
      h('h2', { id: 'team-form-title' }, editing ? `Edit team ${team.team_alias || team.team_id}` : 'Create team'),
      h(
        'div',
        { class: 'grid' },
        field('Team name', alias, 'The team’s alias; unique.'),
        field('Team models', models, 'Comma-separated; empty: every model.'),
        field('Team budget', budget, 'USD over all the team’s keys.'),
        field('Team RPM limit', rpm),
        field('Team TPM limit', tpm),
      ),
      formStatus,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => replace(formArea) }, 'Cancel'), submit),
    );
    replace(formArea, form);
    alias.focus();
  }

  /** A team's members, keys and spend. */
  async function open(teamId) {
    openTeam = teamId;
    replace(detail, notice('loading', 'Loading the team…'));
    let info;
    try {
      info = await api('GET', '/team/info', null, { team_id: teamId });
    } catch (e) {
      replace(detail, notice('error', `Could not load team ${teamId}: ${e.message}`));
      return;
    }
    const t = info.team_info;
    const canManage = isAdmin || (t.admins || []).includes(session.user_id);
    const members = t.members_with_roles || [];
    const memberNodes = memberSection({
      noun: 'team',
      members,
      roles: ['user', 'admin'],
      roleOf: (m) => m.role,
      canManage,
      fieldPrefix: 'member',
      add: (userId, role) => api('POST', '/team/member_add', { team_id: teamId, member: { user_id: userId, role } }),
      update: (userId, role) => api('POST', '/team/member_update', { team_id: teamId, user_id: userId, role }),
      remove: (userId) => api('POST', '/team/member_delete', { team_id: teamId, user_id: userId }),
      removeText: (m) => `${m.user_id} leaves the team; their keys of this team are deleted.`,
      reload: async () => {
        await open(teamId);
        load();
      },
    });
    const keys = info.keys || [];
    const teamSpend = keys.reduce((s, k) => s + (k.spend || 0), 0);
    replace(
      detail,
      h(
        'section',
        { class: 'card detail', 'aria-labelledby': 'team-title' },
        h(
          'div',
          { class: 'detail-head' },
          h('h2', { id: 'team-title' }, `Team ${t.team_alias || t.team_id}`),
          h(
            'div',
            { class: 'row-actions' },
            isAdmin ? h('button', { type: 'button', class: 'secondary small', onclick: () => showForm(t) }, 'Edit team') : null,
            h('button', { type: 'button', class: 'secondary small', onclick: () => { openTeam = null; replace(detail); } }, 'Close'),
          ),
        ),
        h(
          'div',
          { class: 'stats' },
          h('div', { class: 'stat' }, h('span', { class: 'label' }, 'Spend'), h('span', { class: 'value' }, money(t.spend))),
          h('div', { class: 'stat' }, h('span', { class: 'label' }, 'Budget'), h('span', { class: 'value' }, t.max_budget == null ? '∞' : money(t.max_budget))),
          h('div', { class: 'stat' }, h('span', { class: 'label' }, 'Keys'), h('span', { class: 'value' }, count(keys.length))),
          h('div', { class: 'stat' }, h('span', { class: 'label' }, 'Spend of these keys'), h('span', { class: 'value' }, money(teamSpend))),
        ),
        h('p', {}, `Team id: ${t.team_id}. Models: ${(t.models || []).length ? t.models.join(', ') : 'every model'}. Limits: ${limitsText(t)}.`),
        memberNodes,
        h('h3', {}, 'Keys of this team'),
        keys.length
          ? table(
              [
                { label: 'Alias', value: (k) => k.key_alias || '—' },
                { label: 'Key', value: (k) => h('code', {}, k.key_name) },
                { label: 'Owner', value: (k) => k.user_id || '—' },
                { label: 'Spend / budget', class: 'num', value: (k) => `${money(k.spend)} / ${k.max_budget == null ? '∞' : money(k.max_budget)}` },
                { label: 'Status', value: (k) => (k.blocked ? h('span', { class: 'badge bad' }, 'Blocked') : h('span', { class: 'badge good' }, 'Active')) },
              ],
              keys,
            )
          : notice('empty', 'No keys in this team. Create one on the Keys page with this team id.'),
      ),
    );
  }

  const columns = [
    { label: 'Team', value: (t) => t.team_alias || t.team_id },
    { label: 'Team id', value: (t) => h('code', {}, t.team_id) },
    { label: 'Members', class: 'num', value: (t) => count((t.members_with_roles || []).length) },
    { label: 'Models', value: (t) => ((t.models || []).length ? t.models.join(', ') : 'all') },
    { label: 'Spend / budget', class: 'num', value: (t) => `${money(t.spend)} / ${t.max_budget == null ? '∞' : money(t.max_budget)}` },
    { label: 'Limits', value: limitsText },
    { label: 'Status', value: (t) => (t.blocked ? h('span', { class: 'badge bad' }, 'Blocked') : h('span', { class: 'badge good' }, 'Active')) },
    {
      label: 'Actions',
      value: (t) =>
        h(
          'div',
          { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary small', 'aria-label': `Open team ${t.team_alias || t.team_id}`, onclick: () => open(t.team_id) }, 'Open'),
          isAdmin
            ? deleteButton({
                label: `Delete team ${t.team_alias || t.team_id}`,
                title: 'Delete team?',
                text: `Team ${t.team_alias || t.team_id} and its keys are deleted; the keys stop working at once.`,
                status,
                remove: () => api('POST', '/team/delete', { team_ids: [t.team_id] }),
                done: () => {
                  if (openTeam === t.team_id) replace(detail);
                  load();
                },
              })
            : null,
        ),
    },
  ];

  function load() {
    return loadTable(listArea, {
      fetchRows: () => api('GET', '/team/list'),
      what: 'teams',
      columns,
      noun: 'team',
      empty: isAdmin ? 'No teams yet. Use "Create team" to add one.' : 'You are in no team. A proxy admin or a team admin can add you.',
    });
  }

  load();
}
