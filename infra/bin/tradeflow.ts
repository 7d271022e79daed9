#!/usr/bin/env node
// CDK app entry. Context (cdk.json or -c key=value):
//   lambdaDir            cargo lambda output dir (default <repo>/target/lambda; env TRADEFLOW_LAMBDA_DIR)
//   placeholderLambdas   true: synthesize with inert placeholder code (CI, tests); never deploy that
//   deletionProtection   DynamoDB deletion protection (default true)
//   ibkrBaseUrl          value of the /tradeflow/ibkr-base-url SSM parameter
//   ibkrAccountId        value of the /tradeflow/ibkr-account-id SSM parameter
//   envOverrides         JSON object replacing resources.json env values, e.g. {"ORDER_MAX_POLLS":"20"}
//   alarmEmail           subscribe this address to the alarm topic
//   apiJwtIssuer, apiJwtAudience   a JWT authorizer in front of the HTTP API (the function checks its key either way)
//   preview              true: also synthesize TradeflowPreviewStack with the not-yet-listed functions
//   gatewayHost          false: no IBeam host in the gateway VPC (attach IbkrGateway's HostSg to yours)
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { makePlaceholderLambdaDir } from '../lib/lambda-code';
import { withFutureFunctions } from '../lib/preview';
import { findRepoRoot, loadResources } from '../lib/resources';
import { TradeflowStack, type TradeflowStackProps } from '../lib/tradeflow-stack';

const app = new App();
const ctx = (key: string): string | undefined => {
  const v = app.node.tryGetContext(key);
  return v === undefined || v === null || v === '' ? undefined : typeof v === 'string' ? v : JSON.stringify(v);
};
const flag = (key: string, dflt: boolean) => {
  const v = ctx(key);
  return v === undefined ? dflt : v === 'true';
};

const repoRoot = findRepoRoot(__dirname);
const resources = loadResources(repoRoot);
const placeholders = flag('placeholderLambdas', false);
const allNames = withFutureFunctions(resources).functions.map((f) => f.name);
const lambdaDir = placeholders
  ? makePlaceholderLambdaDir(path.join(os.tmpdir(), 'tradeflow-placeholder-lambdas'), allNames)
  : path.resolve(repoRoot, ctx('lambdaDir') ?? process.env.TRADEFLOW_LAMBDA_DIR ?? 'target/lambda');
if (placeholders) console.error('tradeflow: placeholder Lambda code (placeholderLambdas=true): synth only, do not deploy');

const issuer = ctx('apiJwtIssuer');
const audience = ctx('apiJwtAudience');
const props: TradeflowStackProps = {
  repoRoot,
  resources,
  lambdaDir,
  deletionProtection: flag('deletionProtection', true),
  ibkrBaseUrl: ctx('ibkrBaseUrl'),
  ibkrAccountId: ctx('ibkrAccountId'),
  envOverrides: ctx('envOverrides') ? JSON.parse(ctx('envOverrides') as string) : undefined,
  alarmEmail: ctx('alarmEmail'),
  gatewayHost: flag('gatewayHost', true),
  apiJwt: issuer && audience ? { issuer, audience: audience.split(',') } : undefined,
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  description: 'tradeflow: LLM-assisted trading workflow for Interactive Brokers',
};

new TradeflowStack(app, 'TradeflowStack', props);
if (flag('preview', false)) {
  new TradeflowStack(app, 'TradeflowPreviewStack', {
    ...props,
    resources: withFutureFunctions(resources),
    description: 'tradeflow preview: lint target only, never deployed',
  });
}
app.synth();
