// Account: who is signed in, and for an internal user a form to change their own password
// (POST /ui/password). The admin signs in with the master key (or UI_PASSWORD): nothing to
// change here.

import { api, setCsrf } from '../api.js';
import { field, h, notice, replace, when } from '../dom.js';

export function render(main, session) {
  const isAdminSession = !session.user_id;
  const status = h('div', { class: 'status' });
  const head = h(
    'div',
    { class: 'page-head' },
    h('h1', {}, 'Account'),
    h(
      'p',
      { class: 'lead' },
      `Signed in as ${session.username} (${session.role.replaceAll('_', ' ')}) until ${when(session.expires_at)} UTC.`,
    ),
  );
  if (isAdminSession) {
    replace(
      main,
      head,
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'password-title' },
        h('h2', { id: 'password-title' }, 'Password'),
        notice(
          'empty',
          'You signed in as the admin with the master key (or UI_PASSWORD). There is no password to change here: change the master key or UI_PASSWORD in the gateway’s configuration.',
        ),
      ),
    );
    return;
  }

  const current = h('input', { name: 'current_password', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: '8', maxlength: '1024' });
  const confirm = h('input', { name: 'confirm_password', type: 'password', autocomplete: 'new-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Change password');
  const form = h(
    'form',
    {
      class: 'card',
      'aria-labelledby': 'password-title',
      onsubmit: async (ev) => {
        ev.preventDefault();
        if (next.value !== confirm.value) {
          replace(status, notice('error', 'The new password and its confirmation differ.'));
          confirm.select();
          return;
        }
        if (next.value.length < 8) {
          replace(status, notice('error', 'The new password needs at least 8 characters.'));
          return;
        }
        submit.disabled = true;
        replace(status, notice('loading', 'Changing the password…'));
        try {
          const renewed = await api('POST', '/ui/password', {
            current_password: current.value,
            new_password: next.value,
            confirm_password: confirm.value,
          });
          // The old session ended with the change; this one replaces it.
          setCsrf(renewed.csrf_token);
          Object.assign(session, renewed);
          form.reset();
          replace(status, notice('ok', 'Your password was changed. Your other sessions were signed out.'));
        } catch (e) {
          replace(status, notice('error', `The password was not changed: ${e.message}`));
          current.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h2', { id: 'password-title' }, 'Change password'),
    h(
      'div',
      { class: 'grid' },
      field('Current password', current),
      field('New password', next, 'At least 8 characters.'),
      field('Confirm new password', confirm),
    ),
    status,
    h('div', { class: 'actions' }, submit),
  );
  replace(main, head, form);
}
