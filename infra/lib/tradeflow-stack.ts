// TradeflowStack: everything tradeflow deploys, derived from infra/resources.json so that the
// deployed system and the local stack share table names, function names, env var names and the
// state machine file.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  ArnFormat,
  Annotations,
  CfnOutput,
  CfnResource,
  Duration,
  Stack,
  type StackProps,
} from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as authorizers from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import * as integrations from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { IbkrGateway } from './gateway';
import { functionCode } from './lambda-code';
import { PERMISSIONS, type FunctionPermissions } from './permissions';
import { plainEnv, stepFunctions, type FunctionEntry, type KeyAttr, type Resources } from './resources';

/** Env var names whose value is one of this stack's resources (resources.json `deploy_env`). */
export const DEPLOY_ENV = {
  ibkrParameter: 'IBKR_BASE_URL_PARAMETER',
  ibkrAccountParameter: 'IBKR_ACCOUNT_ID_PARAMETER',
  llmSecret: 'LLM_API_KEY_SECRET_ARN',
  apiKeySecret: 'API_KEY_SECRET_ARN',
  eventsRole: 'EVENTS_ROLE_ARN',
} as const;

export const IBKR_PARAMETER_NAME = '/tradeflow/ibkr-base-url';
export const IBKR_ACCOUNT_PARAMETER_NAME = '/tradeflow/ibkr-account-id';
export const LLM_SECRET_NAME = 'tradeflow/llm-api-key';
export const API_KEY_SECRET_NAME = 'tradeflow/api-key';
/** Placeholders the functions refuse on AWS until a deploy sets the real values. */
export const IBKR_BASE_URL_PLACEHOLDER = 'https://ibkr-gateway.invalid:5000/v1/api';
export const IBKR_ACCOUNT_PLACEHOLDER = 'not-configured';

export interface TradeflowStackProps extends StackProps {
  repoRoot: string;
  resources: Resources;
  /** Directory holding <function>/bootstrap.zip (cargo lambda output). */
  lambdaDir: string;
  /** DynamoDB deletion protection (default true). */
  deletionProtection?: boolean;
  /** Days before objects under charts/ expire (default 90). */
  chartsExpireDays?: number;
  logRetention?: logs.RetentionDays;
  /** Value stored in the IBKR gateway URL SSM parameter. */
  ibkrBaseUrl?: string;
  /** Value stored in the IBKR account id SSM parameter. */
  ibkrAccountId?: string;
  /** Values replacing resources.json `env` defaults (names must exist there). */
  envOverrides?: Record<string, string>;
  alarmEmail?: string;
  /**
   * HTTP API auth: the api function checks the bearer key itself (no authorizer);
   * a JWT authorizer is added in front when issuer and audience are given.
   */
  apiJwt?: { issuer: string; audience: string[] };
  permissions?: Record<string, FunctionPermissions>;
  /** Run the IBKR gateway host (IBeam) in the stack's VPC (default true; false: bring your own). */
  gatewayHost?: boolean;
}

const ATTR_TYPES: Record<KeyAttr[1], dynamodb.AttributeType> = {
  S: dynamodb.AttributeType.STRING,
  N: dynamodb.AttributeType.NUMBER,
  B: dynamodb.AttributeType.BINARY,
};

const attr = ([name, type]: KeyAttr): dynamodb.Attribute => ({ name, type: ATTR_TYPES[type] });

/** "fetch-market-data" -> "FetchMarketData" (construct ids). */
const pascal = (s: string) => s.replace(/(^|[-_])(\w)/g, (_m, _sep, c: string) => c.toUpperCase());

/** Adds a checkov skip comment to a resource's Metadata, in place, with its reason. */
export function skipCheckov(resource: Construct, checks: Record<string, string>) {
  const cfn = (resource.node.defaultChild ?? resource) as CfnResource;
  const existing = (cfn.getMetadata('checkov') as { skip?: { id: string; comment: string }[] }) ?? {};
  const skip = [...(existing.skip ?? []), ...Object.entries(checks).map(([id, comment]) => ({ id, comment }))];
  cfn.addMetadata('checkov', { skip });
}

const LAMBDA_SKIPS = {
  CKV_AWS_115: 'no reserved concurrency: a per-function reservation would throttle the workflow; Step Functions retries throttles',
  CKV_AWS_116: 'no DLQ: invoked synchronously by Step Functions (errors go to Catch/record_failure) or by a schedule that runs again next period; Errors alarm per function',
  CKV_AWS_117: 'not in a VPC: touches only AWS APIs and the IBKR gateway over HTTPS; no VPC resources to reach',
  CKV_AWS_173: 'env holds names and ARNs only (secrets stay in Secrets Manager/SSM); AWS-managed encryption at rest is enough',
};

export class TradeflowStack extends Stack {
  readonly functions: Record<string, lambda.Function> = {};
  readonly tables: Record<string, dynamodb.Table> = {};
  /** Number of global secondary indexes per table name (index ARNs are granted only where there are some). */
  private readonly tableIndexes: Record<string, number> = {};
  readonly bucket: s3.Bucket;
  readonly stateMachine: sfn.StateMachine;
  readonly eventsRole: iam.Role;
  readonly httpApi?: apigwv2.HttpApi;
  readonly ibkrGateway: IbkrGateway;

  constructor(scope: Construct, id: string, props: TradeflowStackProps) {
    super(scope, id, props);
    const r = props.resources;
    const permissions = props.permissions ?? PERMISSIONS;
    // W3005: CDK adds DependsOn on each function's role that a GetAtt already implies; harmless.
    this.templateOptions.metadata = { 'cfn-lint': { config: { ignore_checks: ['W3005'] } } };
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    // ---- data -------------------------------------------------------------------------------
    for (const t of r.tables) {
      const table = new dynamodb.Table(this, `Table${pascal(t.name.replace(/^tradeflow-/, ''))}`, {
        tableName: t.name,
        partitionKey: attr(t.pk),
        sortKey: t.sk ? attr(t.sk) : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        timeToLiveAttribute: t.ttl,
        deletionProtection: props.deletionProtection ?? true,
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
      });
      for (const g of t.gsis ?? []) {
        table.addGlobalSecondaryIndex({
          indexName: g.name,
          partitionKey: attr(g.pk),
          sortKey: g.sk ? attr(g.sk) : undefined,
          projectionType: dynamodb.ProjectionType.ALL,
        });
      }
      skipCheckov(table, {
        CKV_AWS_119: 'encrypted with the AWS-managed DynamoDB KMS key; a customer-managed key adds cost and key administration without a requirement for it',
      });
      this.tables[t.name] = table;
      this.tableIndexes[t.name] = (t.gsis ?? []).length;
    }

    this.bucket = new s3.Bucket(this, 'ChartsBucket', {
      bucketName: r.bucket.name,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.KMS_MANAGED,
      bucketKeyEnabled: true,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        { id: 'expire-charts', prefix: 'charts/', expiration: Duration.days(props.chartsExpireDays ?? 90) },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
    });
    skipCheckov(this.bucket, {
      CKV_AWS_18: 'no access logging: holds derived charts and lineage payloads, no user uploads; CloudTrail data events can be enabled account-wide if needed',
      CKV_AWS_21: 'no versioning: objects are regenerable outputs written once per execution and expired by lifecycle',
    });

    // ---- secrets and settings (values live outside the template; env carries names only) ----
    const ibkrParam = new ssm.StringParameter(this, 'IbkrBaseUrlParameter', {
      parameterName: IBKR_PARAMETER_NAME,
      description: 'Base URL of the IBKR Client Portal Gateway (IBeam host) that the functions call, e.g. https://gateway.internal:5000/v1/api',
      stringValue: props.ibkrBaseUrl ?? IBKR_BASE_URL_PLACEHOLDER,
    });
    const ibkrAccountParam = new ssm.StringParameter(this, 'IbkrAccountIdParameter', {
      parameterName: IBKR_ACCOUNT_PARAMETER_NAME,
      description: 'IBKR account id the functions trade (e.g. U1234567); the functions refuse the placeholder and the fake gateway\'s account on AWS',
      stringValue: props.ibkrAccountId ?? IBKR_ACCOUNT_PLACEHOLDER,
    });
    const llmSecret = new secretsmanager.Secret(this, 'LlmApiKeySecret', {
      secretName: LLM_SECRET_NAME,
      description: 'API key of the LLM provider (OpenAI-compatible). Set it with aws secretsmanager put-secret-value.',
    });
    skipCheckov(llmSecret, {
      CKV_AWS_149: 'AWS-managed Secrets Manager key: one secret read by one function role in this account',
    });
    // The key clients send as Authorization: Bearer; generated at deploy, read by the api function only.
    const apiKeySecret = new secretsmanager.Secret(this, 'ApiKeySecret', {
      secretName: API_KEY_SECRET_NAME,
      description: 'Key of the tradeflow HTTP API (Authorization: Bearer <key>); generated at deploy, read by the api function only',
      generateSecretString: { passwordLength: 40, excludePunctuation: true },
    });
    skipCheckov(apiKeySecret, {
      CKV_AWS_149: 'AWS-managed Secrets Manager key: one secret read by one function role in this account',
    });

    // ---- functions --------------------------------------------------------------------------
    const stateMachineArn = this.formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: r.state_machine.name,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });

    this.eventsRole = new iam.Role(this, 'EventsStartExecutionRole', {
      description: `EventBridge rules created by the tradeflow API (${r.env.RULE_PREFIX ?? 'tradeflow-'}*) assume this role to start ${r.state_machine.name}`,
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    });

    const settings = { ...plainEnv(r.env) };
    for (const [k, v] of Object.entries(props.envOverrides ?? {})) {
      if (!(k in settings)) throw new Error(`envOverrides: ${k} is not an env name in infra/resources.json`);
      settings[k] = v;
    }
    const deployValues: Record<string, string> = {
      [DEPLOY_ENV.ibkrParameter]: ibkrParam.parameterName,
      [DEPLOY_ENV.ibkrAccountParameter]: ibkrAccountParam.parameterName,
      [DEPLOY_ENV.llmSecret]: llmSecret.secretArn,
      [DEPLOY_ENV.apiKeySecret]: apiKeySecret.secretArn,
      [DEPLOY_ENV.eventsRole]: this.eventsRole.roleArn,
    };
    const tableEnv = Object.fromEntries(r.tables.map((t) => [t.name, t.env]));
    // Each function gets only its tables and the names its entry lists (the configuration
    // contract: shared/adapters/src/config.rs declares what each reads).
    const envOf = (f: FunctionEntry): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const t of f.tables ?? []) out[tableEnv[t]] = t;
      for (const name of f.env ?? []) {
        if (name === r.bucket.env) out[name] = this.bucket.bucketName;
        else if (name === r.state_machine.env) out[name] = stateMachineArn;
        else if (name in settings) out[name] = settings[name];
        else if (name in deployValues) out[name] = deployValues[name];
        else throw new Error(`function ${f.name}: env ${name} has no value in the stack`);
      }
      return out;
    };

    for (const f of r.functions) {
      const id = pascal(f.name);
      const logGroup = new logs.LogGroup(this, `${id}Logs`, {
        logGroupName: `/aws/lambda/${f.name}`,
        retention,
      });
      skipCheckov(logGroup, {
        CKV_AWS_158: 'CloudWatch Logs default encryption; no customer-managed key requirement',
      });
      const fn = new lambda.Function(this, `${id}Function`, {
        functionName: f.name,
        description: f.step ? `tradeflow step ${f.number ?? ''} ${f.step}`.replace('  ', ' ') : `tradeflow ${f.name}`,
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: 'bootstrap',
        code: functionCode(props.lambdaDir, f.name),
        memorySize: f.memory ?? (['render-charts', 'analyze-chart'].includes(f.name) ? 1024 : 512),
        // Below the ASL task timeout (120 s) so Step Functions sees the Lambda's own timeout error.
        timeout: Duration.seconds(f.timeout ?? (f.step ? 100 : f.http_api ? 29 : 60)),
        environment: envOf(f),
        tracing: lambda.Tracing.ACTIVE,
        loggingFormat: lambda.LoggingFormat.JSON,
        applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
        systemLogLevelV2: lambda.SystemLogLevel.WARN,
        logGroup,
      });
      skipCheckov(fn, LAMBDA_SKIPS);
      this.functions[f.name] = fn;

      const p = permissions[f.name];
      if (!p) {
        Annotations.of(fn).addWarning(
          `no entry for "${f.name}" in infra/lib/permissions.ts: the function gets no data access`,
        );
      }
      this.grant(fn, p ?? {}, {
        ibkrParams: [ibkrParam, ibkrAccountParam],
        llmSecret,
        apiKeySecret,
        stateMachineArn,
        stateMachineName: r.state_machine.name,
        env: settings,
      });
    }

    // ---- state machine (the same file the local stack uses) ------------------------------
    const aslPath = path.join(props.repoRoot, r.state_machine.file);
    const definition = readFileSync(aslPath, 'utf8');
    const steps = stepFunctions(r);
    const substitutions = Object.fromEntries(
      steps.map((f) => [f.asl_arn as string, this.functions[f.name].functionArn]),
    );
    const placeholders = [...definition.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]);
    const unknown = placeholders.filter((p) => !(p in substitutions));
    if (unknown.length) {
      throw new Error(`${r.state_machine.file} uses \${${unknown.join('}, ${')}} with no function in resources.json`);
    }

    const smLogs = new logs.LogGroup(this, 'StateMachineLogs', {
      logGroupName: `/aws/vendedlogs/states/${r.state_machine.name}`,
      retention,
    });
    skipCheckov(smLogs, { CKV_AWS_158: 'CloudWatch Logs default encryption; no customer-managed key requirement' });

    this.stateMachine = new sfn.StateMachine(this, 'TradingWorkflow', {
      stateMachineName: r.state_machine.name,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(definition),
      definitionSubstitutions: substitutions,
      logs: { destination: smLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });
    for (const f of steps) this.functions[f.name].grantInvoke(this.stateMachine);
    this.stateMachine.grantStartExecution(this.eventsRole);

    // ---- functions outside the workflow: schedules and the HTTP API --------------------------
    for (const f of r.functions.filter((x) => x.schedule)) {
      new events.Rule(this, `${pascal(f.name)}Schedule`, {
        description: `tradeflow ${f.name} ${f.schedule}`,
        schedule: events.Schedule.expression(f.schedule as string),
        targets: [new targets.LambdaFunction(this.functions[f.name], { retryAttempts: 0 })],
      });
    }
    const apiFns = r.functions.filter((x) => x.http_api);
    if (apiFns.length > 1) throw new Error(`only one http_api function is supported, got ${apiFns.map((f) => f.name)}`);
    if (apiFns.length === 1) this.httpApi = this.addHttpApi(apiFns[0], props, retention);

    // ---- alarms -------------------------------------------------------------------------
    const alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'tradeflow alarms',
      masterKey: kms.Alias.fromAliasName(this, 'SnsAwsKey', 'alias/aws/sns'),
      enforceSSL: true,
    });
    if (props.alarmEmail) alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const alarm = (id: string, metric: cloudwatch.IMetric, description: string) => {
      const a = new cloudwatch.Alarm(this, id, {
        metric,
        alarmDescription: description,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(new cwActions.SnsAction(alarmTopic));
      return a;
    };
    const period = Duration.minutes(5);
    alarm('ExecutionsFailedAlarm', this.stateMachine.metricFailed({ period, statistic: 'Sum' }),
      `${r.state_machine.name}: an execution failed (see record_failure in its lineage)`);
    alarm('ExecutionsTimedOutAlarm', this.stateMachine.metricTimedOut({ period, statistic: 'Sum' }),
      `${r.state_machine.name}: an execution timed out`);
    for (const f of r.functions) {
      alarm(`${pascal(f.name)}ErrorsAlarm`, this.functions[f.name].metricErrors({ period, statistic: 'Sum' }),
        `${f.name}: the function returned errors`);
    }

    // ---- the IBKR gateway: its VPC, host, and health alarm (infra/lib/gateway.ts) ------------
    this.ibkrGateway = new IbkrGateway(this, 'IbkrGateway', {
      callers: r.functions.filter((f) => permissions[f.name]?.ibkr).map((f) => this.functions[f.name]),
      alarmTopic,
      createHost: props.gatewayHost ?? true,
    });

    // ---- outputs ----------------------------------------------------------------------------
    new CfnOutput(this, 'StateMachineArn', { value: this.stateMachine.stateMachineArn });
    new CfnOutput(this, 'ExecutionsConsoleUrl', {
      value: `https://${this.region}.console.aws.amazon.com/states/home?region=${this.region}#/statemachines/view/${this.stateMachine.stateMachineArn}`,
    });
    new CfnOutput(this, 'ChartsBucketName', { value: this.bucket.bucketName });
    new CfnOutput(this, 'EventsRoleArn', { value: this.eventsRole.roleArn });
    new CfnOutput(this, 'IbkrBaseUrlParameterName', { value: ibkrParam.parameterName });
    new CfnOutput(this, 'IbkrAccountIdParameterName', { value: ibkrAccountParam.parameterName });
    new CfnOutput(this, 'ApiKeySecretArn', { value: apiKeySecret.secretArn });
    new CfnOutput(this, 'LlmApiKeySecretArn', { value: llmSecret.secretArn });
    new CfnOutput(this, 'AlarmTopicArn', { value: alarmTopic.topicArn });
  }

  private grant(
    fn: lambda.Function,
    p: FunctionPermissions,
    ctx: {
      ibkrParams: ssm.StringParameter[];
      llmSecret: secretsmanager.Secret;
      apiKeySecret: secretsmanager.Secret;
      stateMachineArn: string;
      stateMachineName: string;
      env: Record<string, string>;
    },
  ) {
    const table = (name: string) => {
      const t = this.tables[name];
      if (!t) throw new Error(`permissions for ${fn.node.id}: no table ${name} in resources.json`);
      return t;
    };
    for (const [name, actions] of Object.entries(p.tables ?? {})) {
      const t = table(name);
      const onIndexes = actions.filter((a) => a === 'Query' || a === 'Scan');
      fn.addToRolePolicy(new iam.PolicyStatement({
        actions: actions.map((a) => `dynamodb:${a}`),
        resources: [t.tableArn],
      }));
      if (onIndexes.length && (this.tableIndexes[name] ?? 0) > 0) {
        fn.addToRolePolicy(new iam.PolicyStatement({
          actions: onIndexes.map((a) => `dynamodb:${a}`),
          resources: [`${t.tableArn}/index/*`],
        }));
      }
    }
    if (p.bucket === 'read') this.bucket.grantRead(fn);
    if (p.bucket === 'write') this.bucket.grantPut(fn);
    if (p.bucket === 'readWrite') this.bucket.grantReadWrite(fn);
    if (p.ibkr) for (const param of ctx.ibkrParams) param.grantRead(fn);
    if (p.llmSecret) ctx.llmSecret.grantRead(fn);
    if (p.apiKeySecret) ctx.apiKeySecret.grantRead(fn);
    if (p.putEvents) {
      fn.addToRolePolicy(new iam.PolicyStatement({
        actions: ['events:PutEvents'],
        resources: [this.formatArn({ service: 'events', resource: 'event-bus', resourceName: ctx.env.EVENT_BUS_NAME ?? 'default' })],
      }));
    }
    if (p.bedrock) {
      fn.addToRolePolicy(new iam.PolicyStatement({
        actions: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
        resources: [
          // Cross-region inference profiles route to foundation models in other regions.
          `arn:${this.partition}:bedrock:*::foundation-model/*`,
          this.formatArn({ service: 'bedrock', resource: 'inference-profile', resourceName: '*' }),
        ],
      }));
    }
    if (p.schedules) {
      const prefix = ctx.env.RULE_PREFIX ?? 'tradeflow-';
      fn.addToRolePolicy(new iam.PolicyStatement({
        sid: 'ManageStrategyRules',
        actions: [
          'events:PutRule', 'events:DeleteRule', 'events:DescribeRule', 'events:EnableRule',
          'events:DisableRule', 'events:PutTargets', 'events:RemoveTargets', 'events:ListTargetsByRule',
        ],
        resources: [this.formatArn({ service: 'events', resource: 'rule', resourceName: `${prefix}*` })],
      }));
      fn.addToRolePolicy(new iam.PolicyStatement({
        sid: 'PassEventsRoleOnly',
        actions: ['iam:PassRole'],
        resources: [this.eventsRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'events.amazonaws.com' } },
      }));
      fn.addToRolePolicy(new iam.PolicyStatement({
        sid: 'StartThisStateMachine',
        actions: ['states:StartExecution', 'states:ListExecutions'],
        resources: [ctx.stateMachineArn],
      }));
      fn.addToRolePolicy(new iam.PolicyStatement({
        sid: 'InspectItsExecutions',
        actions: ['states:DescribeExecution', 'states:GetExecutionHistory', 'states:StopExecution'],
        resources: [this.formatArn({
          service: 'states',
          resource: 'execution',
          resourceName: `${ctx.stateMachineName}:*`,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        })],
      }));
    }
  }

  private addHttpApi(f: FunctionEntry, props: TradeflowStackProps, retention: logs.RetentionDays): apigwv2.HttpApi {
    // The function checks the bearer key on every route (functions/api/src/auth.rs): a browser
    // and curl reach it with Authorization: Bearer or the viewer's session cookie. An IAM
    // authorizer would refuse both; a JWT authorizer is an optional extra layer.
    const authorizer = props.apiJwt
      ? new authorizers.HttpJwtAuthorizer('JwtAuthorizer', props.apiJwt.issuer, { jwtAudience: props.apiJwt.audience })
      : undefined;
    const api = new apigwv2.HttpApi(this, 'HttpApi', {
      apiName: 'tradeflow-api',
      description: `tradeflow HTTP API -> ${f.name}`,
      defaultIntegration: new integrations.HttpLambdaIntegration('ApiIntegration', this.functions[f.name]),
      defaultAuthorizer: authorizer,
      createDefaultStage: false,
    });
    const accessLogs = new logs.LogGroup(this, 'HttpApiAccessLogs', { retention });
    skipCheckov(accessLogs, { CKV_AWS_158: 'CloudWatch Logs default encryption; no customer-managed key requirement' });
    api.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: 20, burstLimit: 40 },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        format: apigw.AccessLogFormat.jsonWithStandardFields(),
      },
    });
    new CfnOutput(this, 'ApiUrl', { value: api.apiEndpoint });
    return api;
  }
}
