/*
 * workerd_config.mjs — writes the workerd configuration (Cap'n Proto text)
 * that `wharf dev` runs: the user's bundled Worker, the bridge Worker
 * (bridge.js) and an external service for the Wharf server.
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
 *   configDir, bridgePath, wharfAddress ("host:port"), accountId, token,
 *   httpAddress ("host:port", the user's fetch handler)
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
  ];
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "user", worker = ${worker(desc.configDir, { ...desc.user, bindings: userBindings })}),
    (name = "wharf-bridge", worker = ${worker(desc.configDir, {
      modules: [{ name: 'bridge.js', path: desc.bridgePath }],
      compatibilityDate: '2024-09-23',
      compatibilityFlags: [],
      bindings: bridgeBindings,
    })}),
    (name = "wharf", external = (address = ${str(desc.wharfAddress)}, http = ())),
  ],
  sockets = [
    (name = "http", address = ${str(desc.httpAddress)}, http = (), service = "user"),
  ],
);
`;
}
