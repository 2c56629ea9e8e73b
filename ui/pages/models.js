// Models: the deployments of the config and of the database (provider, upstream model, API base
// without credentials, rpm / tpm), a health check on demand, "Add model" (stored in the database,
// its credentials sealed) and delete for the database's models. Proxy admins change; others read.

import { api } from '../api.js';
import { count, deleteButton, field, h, loadTable, notice, plural, replace } from '../dom.js';

export function render(main, session) {
  const isAdmin = session.role === 'proxy_admin';
  const canSeeState = isAdmin || session.role === 'proxy_admin_viewer';
  const status = h('div', { class: 'status' });
  const formArea = h('div', { class: 'form-area' });
  const listArea = h('div', { class: 'list' });
  let health = new Map();
  // model_id → the router's view of the deployment (GET /model/state): cooldown and last probe.
  let states = new Map();

  replace(
    main,
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Models'),
      h('p', { class: 'lead' }, 'Deployments by model group: from the config file and added here (stored in the database).'),
      canSeeState ? h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh') : null,
      isAdmin ? h('button', { type: 'button', class: 'secondary', onclick: () => checkHealth() }, 'Check health') : null,
      isAdmin ? h('button', { type: 'button', onclick: () => showForm() }, 'Add model') : null,
    ),
    formArea,
    status,
    listArea,
  );

  function showForm() {
    const name = h('input', { name: 'model_name', required: true, placeholder: 'gpt-4o' });
    const upstream = h('input', { name: 'model', required: true, placeholder: 'openai/gpt-4o' });
    const base = h('input', { name: 'api_base', type: 'url', placeholder: 'the provider’s default' });
    const key = h('input', { name: 'api_key', type: 'password', autocomplete: 'off' });
    const rpm = h('input', { name: 'rpm', type: 'number', min: '0', step: '1', placeholder: 'no limit' });
    const tpm = h('input', { name: 'tpm', type: 'number', min: '0', step: '1', placeholder: 'no limit' });
    const formStatus = h('div', { class: 'status' });
    const submit = h('button', { type: 'submit' }, 'Add');
    replace(
      formArea,
      h(
        'form',
        {
          class: 'card',
          'aria-labelledby': 'model-form-title',
          onsubmit: async (ev) => {
            ev.preventDefault();
            const params = { model: upstream.value.trim() };
            if (base.value.trim()) params.api_base = base.value.trim();
            if (key.value) params.api_key = key.value;
            if (rpm.value !== '') params.rpm = Number(rpm.value);
            if (tpm.value !== '') params.tpm = Number(tpm.value);
            submit.disabled = true;
            replace(formStatus, notice('loading', 'Adding the model…'));
            try {
              await api('POST', '/model/new', { model_name: name.value.trim(), litellm_params: params });
              key.value = '';
              replace(formArea);
              replace(status, notice('ok', `Model ${name.value.trim()} added.`));
              load();
            } catch (e) {
              replace(formStatus, notice('error', `The model was not added: ${e.message}`));
            } finally {
              submit.disabled = false;
            }
          },
        },
        h('h2', { id: 'model-form-title' }, 'Add model'),
        h(
          'div',
          { class: 'grid' },
          field('Model name', name, 'The name clients ask for; deployments of one name share its traffic.'),
          field('Provider model', upstream, 'provider/model, e.g. openai/gpt-4o, anthropic/claude-3-5-sonnet-20240620.'),
          field('API base', base, 'http or https URL; empty: the provider’s default.'),
          field('API key', key, 'Stored sealed with the salt key; never shown again.'),
          field('RPM', rpm, 'Requests per minute this deployment takes.'),
          field('TPM', tpm, 'Tokens per minute.'),
        ),
        formStatus,
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => replace(formArea) }, 'Cancel'), submit),
      ),
    );
    name.focus();
  }

  async function checkHealth() {
    replace(status, notice('loading', 'Checking every deployment (one small request each)…'));
    try {
      const r = await api('GET', '/health');
      health = new Map();
      for (const e of r.healthy_endpoints || []) health.set(e.model_id, { ok: true, text: `healthy, ${count(e.latency_ms)} ms` });
      for (const e of r.unhealthy_endpoints || []) health.set(e.model_id, { ok: false, text: `unhealthy: ${e.error}` });
      replace(status, notice(r.unhealthy_count ? 'error' : 'ok', `${r.healthy_count} healthy, ${r.unhealthy_count} unhealthy.`));
      load();
    } catch (e) {
      replace(status, notice('error', `The health check failed: ${e.message}`));
    }
  }

  function healthCell(m) {
    const hc = health.get(m.model_info?.id);
    if (hc) return h('span', { class: `badge ${hc.ok ? 'good' : 'bad'}`, title: hc.text }, hc.ok ? hc.text : 'unhealthy');
    const st = states.get(m.model_info?.id);
    if (st?.health === 'healthy') return h('span', { class: 'badge good' }, 'healthy');
    if (st?.health === 'unhealthy') {
      return h('span', { class: 'badge bad', title: st.last_probe_error || '' }, 'unhealthy');
    }
    return h('span', { class: 'muted' }, isAdmin ? 'not checked' : '—');
  }

  /** Whether the router sends the deployment traffic now, or skips it until its cooldown ends. */
  function cooldownCell(m) {
    const st = states.get(m.model_info?.id);
    if (!st) return h('span', { class: 'muted' }, '—');
    const failures = st.cooldowns ? ` · ${plural(st.cooldowns, 'cooldown')} so far` : '';
    if (st.cooling_down) {
      const until = new Date(st.cooldown_until).toISOString().slice(11, 19);
      return h(
        'span',
        { class: 'badge bad', title: `${st.failures} failed of ${st.requests} requests${failures}` },
        `Cooling down until ${until} UTC (${st.cooldown_remaining_seconds} s)`,
      );
    }
    return h('span', { class: 'badge good', title: `${st.failures} failed of ${st.requests} requests${failures}` }, 'Receiving traffic');
  }

  const columns = [
    { label: 'Model name', value: (m) => m.model_name },
    { label: 'Provider', value: (m) => m.model_info?.litellm_provider || '—' },
    { label: 'Provider model', value: (m) => m.litellm_params?.model || '—' },
    { label: 'API base', value: (m) => m.litellm_params?.api_base || 'default' },
    {
      label: 'RPM / TPM',
      class: 'num',
      value: (m) => `${m.litellm_params?.rpm == null ? '—' : count(m.litellm_params.rpm)} / ${m.litellm_params?.tpm == null ? '—' : count(m.litellm_params.tpm)}`,
    },
    { label: 'Source', value: (m) => (m.model_info?.db_model ? 'database' : 'config') },
    { label: 'Health', value: healthCell },
  ];
  if (canSeeState) columns.push({ label: 'Cooldown', value: cooldownCell });
  if (isAdmin) {
    columns.push({
      label: 'Actions',
      value: (m) =>
        m.model_info?.db_model
          ? deleteButton({
              label: `Delete model ${m.model_name}`,
              title: 'Delete model?',
              text: `This deployment of ${m.model_name} is removed; requests go to the others of its name.`,
              status,
              remove: () => api('POST', '/model/delete', { id: m.model_info.id }),
              done: load,
            })
          : h('span', { class: 'muted' }, 'in the config file'),
    });
  }

  function load() {
    return loadTable(listArea, {
      fetchRows: async () => {
        const [info, state] = await Promise.all([
          api('GET', '/model/info'),
          canSeeState ? api('GET', '/model/state').catch(() => null) : null,
        ]);
        states = new Map(((state && state.data) || []).map((d) => [d.model_id, d]));
        return (info.data || []).slice().sort((a, b) => a.model_name.localeCompare(b.model_name));
      },
      what: 'models',
      columns,
      noun: 'deployment',
      empty: isAdmin ? 'No models yet. Use "Add model", or list them in the config file.' : 'No model is available to you.',
    });
  }

  load();
}
