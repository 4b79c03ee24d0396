/**
 * A model download inside an editor job (Evaluate Adapter, Summarize Selection): the engine's model/didProgress with
 * `download` (a generate whose hub model is not cached yet), forwarded to the client as qlora/model/didProgress for
 * the job's run, with the line every editor view shows and the numbers for a progress bar.
 */
import { ModelDidProgress, type DownloadProgress } from '../../../protocol/engine';
import { formatDownload } from '../../../protocol/format';
import type * as L from '../../../protocol/lsp';
import type { Disposable } from '../engine-client/rpc';
import type { EngineSupervisor } from '../engine-client/supervise';

/** What the client gets for one update of a run's download. */
export function downloadNotification(runDir: string, download: DownloadProgress): L.ModelDidProgressParams {
  return { runDir, stage: formatDownload(download), download };
}

/**
 * `send` sees the downloads of `model` (the job's base model) until disposed: the engine serves one request at a
 * time, but another job's listener is live while it waits, and must not take this download for its own.
 */
export function onDownload(engine: EngineSupervisor, model: string, send: (download: DownloadProgress) => void): Disposable {
  return engine.onNotification(ModelDidProgress, (p) => {
    if (p.download && p.download.model === model) send(p.download);
  });
}
