// tasks.js: what a Mesos task pod (namespace `mesos`) says of the framework it runs for.
//
// Callers: views/pool.js (the split by Marathon app and Chronos job) and views/frameworks.js
// (the pods under a framework's or an app's row). The frameworks write these facts onto
// the pods they launch (src/corral/mesos, marathon/launcher.py): labels to select by, and
// the task's TaskInfo as JSON in an annotation, whose own labels carry what a label value
// cannot hold (an app id such as "/a/b"). One place reads them, so the views agree.

export const FRAMEWORK_ID_LABEL = "mesos.corral.dev/framework-id";
export const MARATHON_APP_LABEL = "marathon.corral.dev/app";
export const MARATHON_APP_ID_KEY = "marathon.corral.dev/app-id";
export const CHRONOS_JOB_LABEL = "chronos.corral.dev/job";
export const TASK_INFO = "mesos.corral.dev/task-info";
export const TASK_ID = "mesos.corral.dev/task-id";
/** A valid Kubernetes label value (non-empty: an empty one never names an app). */
export const LABEL_OK = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

/** The labels of a task pod's TaskInfo (key -> value); {} when it has none or no JSON. */
export function taskLabels(pod) {
  const raw = ((pod.metadata || {}).annotations || {})[TASK_INFO];
  if (!raw) return {};
  try {
    const info = JSON.parse(raw);
    const out = {};
    for (const l of (info.labels || {}).labels || []) out[l.key] = l.value;
    return out;
  } catch {
    return {};
  }
}

/** The label value Marathon puts on an app's pods, when it is the id itself (not a hash). */
export function appLabel(appId) {
  const v = String(appId)
    .split("/")
    .filter(Boolean)
    .join("_");
  return LABEL_OK.test(v) ? v : null;
}
