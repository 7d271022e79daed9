// Shared test setup: synthesize TradeflowStack with placeholder Lambda code (no cargo build, no AWS).
import { mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { makePlaceholderLambdaDir } from '../lib/lambda-code';
import { withFutureFunctions } from '../lib/preview';
import { findRepoRoot, loadResources, type Resources } from '../lib/resources';
import { TradeflowStack, type TradeflowStackProps } from '../lib/tradeflow-stack';

export const repoRoot = findRepoRoot(__dirname);
export const resources = loadResources(repoRoot);
export const previewResources = withFutureFunctions(resources);
export const aslText = readFileSync(path.join(repoRoot, resources.state_machine.file), 'utf8');

const lambdaDir = makePlaceholderLambdaDir(
  mkdtempSync(path.join(os.tmpdir(), 'tradeflow-test-lambdas-')),
  previewResources.functions.map((f) => f.name),
);

export function synth(r: Resources = resources, extra: Partial<TradeflowStackProps> = {}) {
  const app = new App({ outdir: mkdtempSync(path.join(os.tmpdir(), 'tradeflow-test-cdkout-')) });
  const stack = new TradeflowStack(app, 'TradeflowStack', {
    repoRoot,
    resources: r,
    lambdaDir,
    env: { account: '123456789012', region: 'eu-west-1' },
    ...extra,
  });
  const template = Template.fromStack(stack);
  return { stack, template, json: template.toJSON() as { Resources: Record<string, CfnRes> } };
}

export interface CfnRes {
  Type: string;
  Properties: Record<string, any>;
  Metadata?: Record<string, any>;
}

export function ofType(json: { Resources: Record<string, CfnRes> }, type: string): [string, CfnRes][] {
  return Object.entries(json.Resources).filter(([, r]) => r.Type === type);
}

/** Logical ids named in Fn::GetAtt / Ref anywhere inside `value`. */
export function referencedIds(value: unknown): Set<string> {
  const ids = new Set<string>();
  const walk = (v: any) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      if (Array.isArray(v['Fn::GetAtt'])) ids.add(v['Fn::GetAtt'][0]);
      if (typeof v.Ref === 'string') ids.add(v.Ref);
      Object.values(v).forEach(walk);
    }
  };
  walk(value);
  return ids;
}

/** Function name -> IAM policy statements attached to its role. */
export function statementsByFunction(json: { Resources: Record<string, CfnRes> }): Map<string, any[]> {
  const roleToFn = new Map<string, string>();
  for (const [, fn] of ofType(json, 'AWS::Lambda::Function')) {
    roleToFn.set(fn.Properties.Role['Fn::GetAtt'][0], fn.Properties.FunctionName);
  }
  const out = new Map<string, any[]>();
  // CDK moves statements beyond an inline policy's size limit into attached managed policies.
  const policies = [...ofType(json, 'AWS::IAM::Policy'), ...ofType(json, 'AWS::IAM::ManagedPolicy')];
  for (const [, pol] of policies) {
    for (const role of pol.Properties.Roles ?? []) {
      const fn = roleToFn.get(role.Ref);
      if (!fn) continue;
      out.set(fn, [...(out.get(fn) ?? []), ...pol.Properties.PolicyDocument.Statement]);
    }
  }
  return out;
}

export const asArray = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);
