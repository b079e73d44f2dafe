/*
 * workerd_config.mjs — writes the workerd configuration (Cap'n Proto text)
 * that `wharf dev` runs: the user's bundled Worker, the bridge Worker
 * (bridge.js), an external service for the Wharf server, and two sockets:
 * the user's fetch handler and the bridge's push endpoint (Wharf POSTs the
 * consumed queues' batches there).
 *
 * Pure: a description in, the config text out; the caller writes the file
 * into desc.configDir. Cap'n Proto reads an absolute `embed` path from its
 * import root, not the file system's, so modules are named relative to
 * configDir.
 */
import path from 'node:path';

/* A Cap'n Proto text string literal (its escapes are C's, which JSON's are). */
const str = (s) => JSON.stringify(String(s));

function worker(configDir, { modules, compatibilityDate, compatibilityFlags, bindings }) {
  const mods = modules.map((m) => `(name = ${str(m.name)}, esModule = embed ${str(path.relative(configDir, m.path))})`);
  return `(
      modules = [ ${mods.join(',\n        ')} ],
      compatibilityDate = ${str(compatibilityDate)},
      compatibilityFlags = [ ${compatibilityFlags.map(str).join(', ')} ],
      bindings = [
        ${bindings.join(',\n        ')}
      ]
    )`;
}

/* The user's queue producer binding: a queue binding to the bridge, whose
 * ctx.props names the Wharf queue. */
function queueBinding(binding, queue) {
  const props = JSON.stringify({ queue_id: queue.queue_id, queue_name: queue.queue_name });
  return `(name = ${str(binding)}, queue = (name = "wharf-bridge", props = (json = ${str(props)})))`;
}

/*
 * desc: {
 *   user: {modules:[{name, path}], compatibilityDate, compatibilityFlags, vars:{}},
 *   producers: [{binding, queue:{queue_id, queue_name}}],
 *   consumed: [{queue_id, queue_name}], the queues whose batches reach queue(),
 *   configDir, bridgePath, wharfAddress ("host:port"), accountId, token,
 *   secret (the worker's signing secret), httpAddress ("host:port", the
 *   user's fetch handler), queueAddress ("host:port", the push endpoint; none
 *   when the Worker consumes nothing)
 * }
 */
export function workerdConfig(desc) {
  const userBindings = [
    ...desc.producers.map((p) => queueBinding(p.binding, p.queue)),
    ...Object.entries(desc.user.vars || {}).map(([k, v]) =>
      typeof v === 'string' ? `(name = ${str(k)}, text = ${str(v)})` : `(name = ${str(k)}, json = ${str(JSON.stringify(v))})`,
    ),
  ];
  const bridgeBindings = [
    '(name = "WHARF", service = "wharf")',
    `(name = "WHARF_ACCOUNT_ID", text = ${str(desc.accountId)})`,
    `(name = "WHARF_API_TOKEN", text = ${str(desc.token)})`,
    '(name = "USER", service = "user")',
    `(name = "WHARF_SECRET", text = ${str(desc.secret || '')})`,
    `(name = "WHARF_QUEUES", text = ${str(JSON.stringify(Object.fromEntries(desc.consumed.map((q) => [q.queue_name, q.queue_id]))))})`,
  ];
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "user", worker = ${worker(desc.configDir, { ...desc.user, bindings: userBindings })}),
    (name = "wharf-bridge", worker = ${worker(desc.configDir, {
      modules: [{ name: 'bridge.js', path: desc.bridgePath }],
      compatibilityDate: '2024-09-23',
      compatibilityFlags: ['service_binding_extra_handlers'], /* USER.queue() */
      bindings: bridgeBindings,
    })}),
    (name = "wharf", external = (address = ${str(desc.wharfAddress)}, http = ())),
    # The Worker's own fetch(): as under wrangler dev, loopback and the LAN
    # are reachable too (workerd's default "internet" allows public only).
    (name = "internet", network = (allow = ["public", "private", "local"], tlsOptions = (trustBrowserCas = true))),
  ],
  sockets = [
    (name = "http", address = ${str(desc.httpAddress)}, http = (), service = "user"),
    ${desc.queueAddress ? `(name = "queue", address = ${str(desc.queueAddress)}, http = (), service = "wharf-bridge"),` : ''}
  ],
);
`;
}
