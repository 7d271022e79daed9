// What each function may touch. This is the one place to widen or narrow a function's IAM.
// Keys are function names from resources.json; tables are resources.json table names.
// A function missing here gets no data access at all (and a synth warning), never a wildcard.
//
// Basis (issues 2-7): every workflow step writes its own lineage item (conditional write, re-read on
// retry) and may spill a large payload to the charts bucket; the order path publishes domain
// events (OrderFilled, PositionClosed) to EventBridge; IBKR callers read the gateway URL and account
// parameters; only the api function reads the API key secret.

/** DynamoDB item actions a function may call on a table. Query and Scan also cover the table's indexes. */
export type TableAction =
  | 'GetItem' | 'Query' | 'Scan' | 'BatchGetItem' | 'ConditionCheckItem'
  | 'PutItem' | 'UpdateItem' | 'DeleteItem' | 'BatchWriteItem';

export const WRITE_ACTIONS: ReadonlySet<TableAction> = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem']);

export interface FunctionPermissions {
  /**
   * Tables by resources.json name, and the actions the function calls on each: what the AWS
   * calls recorded during the integration suite need (infra/local/iam_check.py proves it).
   * A transaction needs the per-item action (PutItem, UpdateItem, DeleteItem, ConditionCheckItem).
   */
  tables?: Record<string, TableAction[]>;
  /** Charts bucket access. "write" = PutObject only (lineage payload spill). */
  bucket?: 'read' | 'write' | 'readWrite';
  /** events:PutEvents on the EVENT_BUS_NAME bus only. */
  putEvents?: boolean;
  /** ssm:GetParameter on the IBKR gateway URL and account id parameters only. */
  ibkr?: boolean;
  /** secretsmanager:GetSecretValue on the LLM API key secret only. */
  llmSecret?: boolean;
  /** secretsmanager:GetSecretValue on the HTTP API key secret only (the api function). */
  apiKeySecret?: boolean;
  /** bedrock:InvokeModel on foundation models / inference profiles of this region (Bedrock provider). */
  bedrock?: boolean;
  /**
   * The API: manage EventBridge rules named RULE_PREFIX* on the default bus, pass only the
   * events role, start/inspect executions of this state machine only.
   */
  schedules?: boolean;
}

const LINEAGE = 'tradeflow-lineage';
// Every IBKR caller keeps the gateway-wide discipline (pacing, order window) in this table.
const GATEWAY = 'tradeflow-gateway';
// Every workflow step writes its own lineage item (conditional put) and re-reads it on a retry.
const STEP_LINEAGE: Record<string, TableAction[]> = { [LINEAGE]: ['GetItem', 'PutItem'] };
// The discipline: a conditional put of the gateway item, then updates of its slots.
const DISCIPLINE: TableAction[] = ['GetItem', 'PutItem', 'UpdateItem'];

export const PERMISSIONS: Record<string, FunctionPermissions> = {
  'load-strategy': {
    tables: {
      'tradeflow-strategies': ['GetItem'],
      // The tick claim (one execution per strategy and second) and the execution's record.
      'tradeflow-ticks': ['GetItem', 'PutItem'],
      'tradeflow-executions': ['PutItem'],
      ...STEP_LINEAGE,
    },
    bucket: 'write',
  },
  'fetch-market-data': {
    tables: { ...STEP_LINEAGE, [GATEWAY]: DISCIPLINE },
    bucket: 'readWrite',
    ibkr: true,
  },
  'compute-indicators': { tables: STEP_LINEAGE, bucket: 'readWrite' },
  'render-charts': { tables: STEP_LINEAGE, bucket: 'readWrite' },
  'analyze-chart': {
    tables: {
      'tradeflow-prompts': ['GetItem', 'Query'],
      'tradeflow-positions': ['GetItem'],
      ...STEP_LINEAGE,
    },
    bucket: 'readWrite',
    llmSecret: true,
    bedrock: true,
  },
  'parse-signal': { tables: STEP_LINEAGE, bucket: 'readWrite' },
  'place-order': {
    tables: {
      // Order intents (and the release of a failed one), entry/exit and contract claims on
      // positions inside transactions (issue 12), the closed trades of the day (by_closed).
      'tradeflow-orders': ['GetItem', 'PutItem', 'DeleteItem'],
      // DeleteItem: a claim released inside a transaction (seen by the IAM check only when
      // an entry is refused after its claim, under concurrent runs).
      'tradeflow-positions': ['GetItem', 'Query', 'PutItem', 'UpdateItem', 'DeleteItem'],
      'tradeflow-trades': ['Query'],
      ...STEP_LINEAGE,
      [GATEWAY]: DISCIPLINE,
    },
    bucket: 'write',
    ibkr: true,
  },
  'check-order': {
    tables: {
      // A fill commits order, position, trade and the account's day in one transaction (the
      // books code position-monitor shares: a closing fill also deletes the position claim,
      // checks the account item and puts the trade; the suite's check-order calls recorded
      // only opening fills).
      'tradeflow-orders': ['GetItem', 'PutItem'],
      'tradeflow-positions': ['GetItem', 'Query', 'PutItem', 'UpdateItem', 'DeleteItem', 'ConditionCheckItem'],
      'tradeflow-trades': ['Query', 'PutItem'],
      ...STEP_LINEAGE,
      [GATEWAY]: DISCIPLINE,
    },
    bucket: 'write',
    ibkr: true,
    putEvents: true,
  },
  'update-portfolio': {
    tables: {
      'tradeflow-portfolio': ['Query', 'PutItem'],
      'tradeflow-positions': ['Query'],
      'tradeflow-trades': ['Query'],
      ...STEP_LINEAGE,
      [GATEWAY]: DISCIPLINE,
    },
    bucket: 'write',
    ibkr: true,
    putEvents: true,
  },
  'record-execution': {
    tables: { 'tradeflow-executions': ['UpdateItem'], ...STEP_LINEAGE },
    bucket: 'write',
  },
  // Reads the execution's lineage to name the failed step.
  'record-failure': {
    tables: { 'tradeflow-executions': ['UpdateItem'], [LINEAGE]: ['GetItem', 'PutItem', 'Query'] },
    bucket: 'write',
  },

  // Functions outside the workflow (issues 3, 6, 7); they get deployed as soon as resources.json lists them.
  api: {
    tables: {
      'tradeflow-executions': ['GetItem', 'Query', 'Scan'],
      [LINEAGE]: ['GetItem', 'Query'],
      'tradeflow-orders': ['GetItem', 'Query', 'Scan'],
      'tradeflow-positions': ['Query', 'Scan'],
      'tradeflow-trades': ['Query', 'Scan'],
      'tradeflow-portfolio': ['Query', 'Scan'],
      'tradeflow-strategies': ['GetItem', 'Scan', 'PutItem', 'DeleteItem'],
      'tradeflow-prompts': ['GetItem', 'Query', 'Scan', 'PutItem', 'DeleteItem'],
      // The symbol search cache; ticks: a manual run's claim of its second.
      'tradeflow-symbols': ['GetItem', 'PutItem'],
      'tradeflow-ticks': ['PutItem'],
      [GATEWAY]: DISCIPLINE,
    },
    bucket: 'read',
    ibkr: true,
    apiKeySecret: true,
    schedules: true,
  },
  'position-monitor': {
    tables: {
      'tradeflow-strategies': ['GetItem'],
      // The reconciler: working and commission-pending orders, positions closed in a
      // transaction with their trade, the runs that changed or found something in lineage.
      'tradeflow-orders': ['GetItem', 'Query', 'PutItem', 'DeleteItem'],
      'tradeflow-positions': ['GetItem', 'Query', 'Scan', 'PutItem', 'UpdateItem', 'DeleteItem', 'ConditionCheckItem'],
      'tradeflow-trades': ['Query', 'PutItem'],
      [LINEAGE]: ['PutItem'],
      [GATEWAY]: DISCIPLINE,
    },
    bucket: 'write',
    ibkr: true,
    putEvents: true,
  },
  // The brokerage session state lives in the symbols table (the keep-alive's item).
  'session-keepalive': { tables: { 'tradeflow-symbols': ['PutItem'], [GATEWAY]: DISCIPLINE }, ibkr: true },
};
