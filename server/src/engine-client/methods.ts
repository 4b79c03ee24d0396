/** Method name -> params / result types of protocol/engine.ts, so requests and handlers are checked by tsc. */
import type * as P from '../../../protocol/engine';

export interface EngineRequests {
  [P.Initialize]: { params: P.InitializeParams; result: P.InitializeResult };
  [P.Shutdown]: { params: null; result: P.ShutdownResult };
  [P.TrainStart]: { params: P.TrainStartParams; result: P.TrainStartResult };
  [P.TrainCancel]: { params: P.TrainCancelParams; result: P.TrainCancelResult };
  [P.TrainPlan]: { params: P.TrainPlanParams; result: P.TrainPlanResult };
  [P.ModelImport]: { params: P.ModelImportParams; result: P.ModelImportResult };
  [P.ModelExport]: { params: P.ModelExportParams; result: P.ModelExportResult };
  [P.ModelPull]: { params: P.ModelPullParams; result: P.ModelPullResult };
  [P.Generate]: { params: P.GenerateParams; result: P.GenerateResult };
}

export interface EngineNotifications {
  [P.TrainDidStage]: P.TrainDidStageParams;
  [P.TrainDidProgress]: P.TrainDidProgressParams;
  [P.TrainDidEval]: P.TrainDidEvalParams;
  [P.TrainDidCheckpoint]: P.TrainDidCheckpointParams;
  [P.TrainDidEnd]: P.TrainDidEndParams;
  [P.ModelDidProgress]: P.ModelDidProgressParams;
  [P.GenerateDidStream]: P.GenerateDidStreamParams;
}

export type RequestMethod = keyof EngineRequests;
export type NotificationMethod = keyof EngineNotifications;
