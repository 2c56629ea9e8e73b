// The sign-in form: the admin (admin / the master key) or an internal user (user id / password).

import { setCsrf, signIn } from '../api.js';
import { field, h, notice, replace } from '../dom.js';

export function renderLogin(root, message, onSignedIn) {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const status = h('div', { class: 'status' }, message ? notice('ok', message) : null);
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'login',
      method: 'post',
      action: '/ui/login',
      onsubmit: async (ev) => {
        ev.preventDefault();
        button.disabled = true;
        replace(status, notice('loading', 'Signing in…'));
        try {
          const session = await signIn(username.value.trim(), password.value);
          setCsrf(session.csrf_token);
          password.value = '';
          await onSignedIn(session);
        } catch (e) {
          const text =
            e.status === 429
              ? e.message
              : e.status === 401
                ? 'Wrong username or password. The admin signs in as "admin" with the master key; users with the password an admin set for them.'
                : `Sign-in failed: ${e.message}`;
          replace(status, notice('error', text));
          password.select();
        } finally {
          button.disabled = false;
        }
      },
    },
    h('h1', {}, 'Tollgate'),
    h('p', { class: 'lead' }, 'Sign in to manage keys and see usage.'),
    field('Username', username),
    field('Password', password),
    status,
    button,
  );
  replace(root, h('main', { class: 'login-page' }, form));
  username.focus();
}
