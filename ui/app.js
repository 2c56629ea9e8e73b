// The Tollgate admin UI: session, layout, navigation. Pages live in pages/*.js; each exports
// render(main, session) and may return a cleanup function.

import { currentSession, setCsrf, signOut, whenSignedOut } from './api.js';
import { h, notice, replace } from './dom.js';
import { renderLogin } from './pages/login.js';
import * as keys from './pages/keys.js';
import * as users from './pages/users.js';
import * as teams from './pages/teams.js';
import * as organizations from './pages/organizations.js';
import * as models from './pages/models.js';
import * as usage from './pages/usage.js';
import * as logs from './pages/logs.js';
import * as account from './pages/account.js';

const app = document.getElementById('app');

const ADMIN_READERS = ['proxy_admin', 'proxy_admin_viewer'];

/** Every page, with who may see it (the API refuses the others anyway). */
const PAGES = [
  { id: 'keys', title: 'Keys', page: keys, visible: () => true },
  { id: 'users', title: 'Users', page: users, visible: (s) => ADMIN_READERS.includes(s.role) },
  { id: 'teams', title: 'Teams', page: teams, visible: (s) => s.role !== 'team' && s.role !== 'customer' },
  { id: 'organizations', title: 'Organizations', page: organizations, visible: (s) => ADMIN_READERS.includes(s.role) },
  { id: 'models', title: 'Models', page: models, visible: (s) => s.role !== 'team' && s.role !== 'customer' },
  { id: 'usage', title: 'Usage', page: usage, visible: (s) => ADMIN_READERS.includes(s.role) },
  { id: 'logs', title: 'Logs', page: logs, visible: (s) => ADMIN_READERS.includes(s.role) },
  // Reached from the header's "Account" link, not the navigation.
  { id: 'account', title: 'Account', page: account, visible: () => true, inNav: false },
];

let session = null;
let cleanup = null;

function pagesFor(s) {
  return PAGES.filter((p) => p.visible(s));
}

function currentPage() {
  const wanted = location.hash.replace(/^#\/?/, '').split('?')[0];
  const visible = pagesFor(session);
  return visible.find((p) => p.id === wanted) || visible[0];
}

function showLogin(message) {
  session = null;
  setCsrf('');
  if (cleanup) cleanup();
  cleanup = null;
  document.title = 'Sign in · Tollgate';
  renderLogin(app, message, async () => {
    await boot();
  });
}

async function doSignOut() {
  try {
    await signOut();
  } catch {
    // the session may be gone already
  }
  showLogin('You are signed out.');
}

function layout() {
  const current = currentPage();
  const nav = h(
    'nav',
    { 'aria-label': 'Main' },
    h(
      'ul',
      {},
      pagesFor(session)
        .filter((p) => p.inNav !== false)
        .map((p) =>
        h(
          'li',
          {},
          h('a', { href: `#/${p.id}`, 'aria-current': p === current ? 'page' : null }, p.title),
        ),
      ),
    ),
  );
  const who = h(
    'div',
    { class: 'who' },
    h('span', { class: 'user', title: `Role: ${session.role}` }, session.username),
    h('span', { class: 'role' }, session.role.replaceAll('_', ' ')),
    h('a', { href: '#/account', class: 'account', 'aria-current': current.id === 'account' ? 'page' : null }, 'Account'),
    h('button', { type: 'button', class: 'secondary small', onclick: doSignOut }, 'Sign out'),
  );
  const main = h('main', { id: 'main', tabindex: '-1' });
  replace(
    app,
    h('header', { class: 'top' }, h('a', { class: 'brand', href: '#/keys' }, 'Tollgate'), nav, who),
    main,
  );
  return { main, current };
}

function route() {
  if (!session) return;
  if (cleanup) cleanup();
  cleanup = null;
  const { main, current } = layout();
  document.title = `${current.title} · Tollgate`;
  const result = current.page.render(main, session);
  if (typeof result === 'function') cleanup = result;
}

async function boot() {
  replace(app, notice('loading', 'Loading…'));
  try {
    session = await currentSession();
  } catch (e) {
    if (e.status === 401) {
      showLogin();
    } else {
      replace(
        app,
        notice('error', `The gateway did not answer (${e.message}). Check that it is running, then reload the page.`),
      );
    }
    return;
  }
  setCsrf(session.csrf_token);
  route();
}

whenSignedOut(() => showLogin('Your session has ended. Sign in again.'));
window.addEventListener('hashchange', route);
boot();
