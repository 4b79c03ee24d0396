/** What every command factory gets: the context and the views it acts on. */
import type { Ctx } from '../context';
import type { Dashboard } from '../dashboard/panel';
import type { RunsTree } from '../runs-tree';
import type { Summaries } from '../summaries';

export interface Services {
  ctx: Ctx;
  runs: RunsTree;
  dashboard: Dashboard;
  summaries: Summaries;
}
