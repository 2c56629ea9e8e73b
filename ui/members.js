// The member list of a team or an organization: the members with their roles (changed in place
// by those who manage the group), "Add member" and "Remove" with confirmation. Teams and
// organizations differ only in their routes, role names and words, given by the caller.

import { confirmDialog, field, h, notice, replace, table } from './dom.js';

/**
 * The members section of a group, as nodes to put in its detail card.
 *
 * options:
 * - noun: 'team' | 'organization' (words only)
 * - members: the member objects ({user_id, user_email, …})
 * - roles: the role values a member may have, the first the default
 * - roleOf(member): the member's role
 * - canManage: whether this caller adds, removes and changes roles
 * - add(userId, role), update(userId, role), remove(userId): the API calls (promises)
 * - removeText(member): what the removal confirmation says
 * - reload(): redraw the group after a change (a promise)
 * - fieldPrefix: the name prefix of the add form's inputs
 */
export function memberSection(options) {
  const { noun, members, roles, roleOf, canManage } = options;
  const status = h('div', { class: 'status' });
  const label = (r) => String(r).replaceAll('_', ' ');
  const who = (m) => m.user_id || m.user_email || '—';

  async function run(what, call, okText) {
    replace(status, notice('loading', `${what}…`));
    try {
      await call();
      await options.reload();
      // reload() draws a new section; say what happened in it.
      const shown = document.querySelector('[data-members-status]');
      if (shown && okText) replace(shown, notice('ok', okText));
    } catch (e) {
      replace(status, notice('error', `${what} failed: ${e.message}`));
    }
  }

  function roleCell(m) {
    const current = roleOf(m) || roles[0];
    if (!canManage || !m.user_id) return label(current);
    const select = h(
      'select',
      {
        name: 'member_role_update',
        class: 'inline',
        'aria-label': `Role of ${m.user_id} in the ${noun}`,
        onchange: () =>
          run(
            'Change role',
            () => options.update(m.user_id, select.value),
            `${m.user_id} is now ${label(select.value)} in the ${noun}.`,
          ),
      },
      roles.map((r) => h('option', { value: r, selected: r === current }, label(r))),
    );
    return select;
  }

  const columns = [
    { label: 'User', value: who },
    { label: noun === 'team' ? 'Team role' : 'Organization role', value: roleCell },
  ];
  if (canManage) {
    columns.push({
      label: 'Actions',
      value: (m) =>
        h(
          'button',
          {
            type: 'button',
            class: 'danger small',
            'aria-label': `Remove ${m.user_id} from the ${noun}`,
            onclick: async () => {
              const ok = await confirmDialog('Remove member?', options.removeText(m), 'Remove');
              if (ok) run('Remove member', () => options.remove(m.user_id), `${m.user_id} left the ${noun}.`);
            },
          },
          'Remove',
        ),
    });
  }

  let addForm = null;
  if (canManage) {
    const memberId = h('input', { name: `${options.fieldPrefix}_user_id`, autocomplete: 'off' });
    const memberRole = h(
      'select',
      { name: `${options.fieldPrefix}_role` },
      roles.map((r) => h('option', { value: r }, label(r))),
    );
    addForm = h(
      'form',
      {
        class: 'toolbar',
        onsubmit: (ev) => {
          ev.preventDefault();
          const id = memberId.value.trim();
          if (!id) return;
          run('Add member', () => options.add(id, memberRole.value), `${id} joined the ${noun}.`);
        },
      },
      field('Member user ID', memberId),
      field('Member role', memberRole),
      h('button', { type: 'submit', class: 'secondary' }, 'Add member'),
    );
  }
  status.setAttribute('data-members-status', '');

  return [
    h('h3', {}, 'Members'),
    members.length
      ? table(columns, members)
      : notice('empty', canManage ? 'No members yet: add one below.' : 'No members.'),
    addForm,
    status,
  ];
}
