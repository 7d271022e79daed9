// What each function may touch. This is the one place to widen or narrow a function's IAM.
// Keys are function names from resources.json; tables are resources.json table names.
// A function missing here gets no data access at all (and a synth warning), never a wildcard.
//
// Basis (issues 2-7): every workflow step writes its own lineage item (conditional write, re-read on
// retry) and may spill a large payload to the charts bucket; the order path publishes domain
// events (OrderFilled, PositionClosed) to EventBridge; IBKR callers read the gateway URL and account
// parameters; only the api function reads the API key secret.

export interface FunctionPermissions {
  /** Tables read only (GetItem/Query/Scan/BatchGet), by resources.json name. */
  read?: string[];
  /** Tables read and written. */
  readWrite?: string[];
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

export const PERMISSIONS: Record<string, FunctionPermissions> = {
  'load-strategy': {
    read: ['tradeflow-strategies'],
    readWrite: ['tradeflow-ticks', 'tradeflow-executions', LINEAGE],
    bucket: 'write',
  },
  'fetch-market-data': {
    readWrite: ['tradeflow-symbols', LINEAGE, GATEWAY],
    bucket: 'readWrite',
    ibkr: true,
  },
  'compute-indicators': { readWrite: [LINEAGE], bucket: 'readWrite' },
  'render-charts': { readWrite: [LINEAGE], bucket: 'readWrite' },
  'analyze-chart': {
    read: ['tradeflow-prompts', 'tradeflow-positions'],
    readWrite: [LINEAGE],
    bucket: 'readWrite',
    llmSecret: true,
    bedrock: true,
  },
  'parse-signal': { readWrite: [LINEAGE], bucket: 'readWrite' },
  'place-order': {
    read: ['tradeflow-portfolio', 'tradeflow-trades'],
    // Positions: entry/exit claims, contract claims and the account item (issue 12).
    readWrite: ['tradeflow-orders', 'tradeflow-positions', LINEAGE, GATEWAY],
    bucket: 'write',
    ibkr: true,
  },
  'check-order': {
    // A fill commits order, position, trade and the account's day in one transaction.
    readWrite: ['tradeflow-orders', 'tradeflow-positions', 'tradeflow-trades', LINEAGE, GATEWAY],
    bucket: 'write',
    ibkr: true,
    putEvents: true,
  },
  'update-portfolio': {
    readWrite: ['tradeflow-orders', 'tradeflow-positions', 'tradeflow-trades', 'tradeflow-portfolio', LINEAGE, GATEWAY],
    bucket: 'write',
    ibkr: true,
    putEvents: true,
  },
  'record-execution': { readWrite: ['tradeflow-executions', LINEAGE], bucket: 'write' },
  'record-failure': { readWrite: ['tradeflow-executions', LINEAGE], bucket: 'write' },

  // Functions outside the workflow (issues 3, 6, 7); they get deployed as soon as resources.json lists them.
  api: {
    read: [
      'tradeflow-executions',
      LINEAGE,
      'tradeflow-orders',
      'tradeflow-positions',
      'tradeflow-trades',
      'tradeflow-portfolio',
    ],
    // Ticks: a manual run's claim of its second.
    readWrite: ['tradeflow-strategies', 'tradeflow-prompts', 'tradeflow-symbols', 'tradeflow-ticks', GATEWAY],
    bucket: 'read',
    ibkr: true,
    apiKeySecret: true,
    schedules: true,
  },
  'position-monitor': {
    read: ['tradeflow-strategies', 'tradeflow-portfolio'],
    // Lineage: the reconciler records each run that changed or found something.
    readWrite: ['tradeflow-positions', 'tradeflow-orders', 'tradeflow-trades', LINEAGE, GATEWAY],
    bucket: 'write',
    ibkr: true,
    putEvents: true,
  },
  'session-keepalive': { readWrite: [GATEWAY], ibkr: true },
};
