import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { plainEnv } from '../lib/resources';
import { DEPLOY_ENV } from '../lib/tradeflow-stack';
import { ofType, resources, synth } from './helpers';

const { template, json } = synth();

describe('TradeflowStack resources', () => {
  it('has one table per resources.json table, one function per function, one state machine, one bucket', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', resources.tables.length);
    template.resourceCountIs('AWS::Lambda::Function', resources.functions.length);
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    template.resourceCountIs('AWS::S3::Bucket', 1);
    // ExecutionsFailed + ExecutionsTimedOut + Errors per function + the IBKR gateway's health.
    template.resourceCountIs('AWS::CloudWatch::Alarm', 3 + resources.functions.length);
    template.resourceCountIs('AWS::Events::Rule', resources.functions.filter((f) => f.schedule).length);
  });

  it('creates every table on demand with PITR, deletion protection, keys, TTL and GSIs from resources.json', () => {
    for (const t of resources.tables) {
      const keys = [{ AttributeName: t.pk[0], KeyType: 'HASH' }];
      if (t.sk) keys.push({ AttributeName: t.sk[0], KeyType: 'RANGE' });
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        TableName: t.name,
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
        KeySchema: keys,
        TimeToLiveSpecification: t.ttl ? { AttributeName: t.ttl, Enabled: true } : Match.absent(),
        GlobalSecondaryIndexes: t.gsis
          ? t.gsis.map((g) => Match.objectLike({ IndexName: g.name }))
          : Match.absent(),
      });
    }
  });

  it('turns deletion protection off when asked', () => {
    const off = synth(resources, { deletionProtection: false }).json;
    for (const [, t] of ofType(off, 'AWS::DynamoDB::Table')) {
      assert.equal(t.Properties.DeletionProtectionEnabled, false);
    }
  });

  it('keeps the charts bucket private, encrypted, TLS-only, with charts/ expiring', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: resources.bucket.name,
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
      },
      BucketEncryption: { ServerSideEncryptionConfiguration: [Match.objectLike({
        ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' },
      })] },
      LifecycleConfiguration: { Rules: Match.arrayWith([
        Match.objectLike({ Prefix: 'charts/', ExpirationInDays: 90, Status: 'Enabled' }),
      ]) },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      })]) },
    });
  });

  it('has no bucket policy statement that allows a public principal', () => {
    for (const [, p] of ofType(json, 'AWS::S3::BucketPolicy')) {
      for (const s of p.Properties.PolicyDocument.Statement) {
        if (s.Effect !== 'Allow') continue;
        assert.notDeepEqual(s.Principal, '*');
        assert.notDeepEqual(s.Principal, { AWS: '*' });
      }
    }
  });

  it('deploys each function as provided.al2023 arm64 bootstrap with X-Ray and JSON logs', () => {
    for (const f of resources.functions) {
      template.hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: f.name,
        Runtime: 'provided.al2023',
        Architectures: ['arm64'],
        Handler: 'bootstrap',
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: Match.objectLike({ LogFormat: 'JSON' }),
      });
    }
  });

  it('gives every function exactly the env names of resources.json plus the deploy-only names', () => {
    // A name may be both local (resources.json env) and deploy-only (e.g. EVENTS_ROLE_ARN): once.
    const expected = [
      ...new Set([
        ...Object.keys(plainEnv(resources.env)),
        ...resources.tables.map((t) => t.env),
        resources.bucket.env,
        resources.state_machine.env,
        ...Object.values(DEPLOY_ENV),
      ]),
    ].sort();
    for (const [, fn] of ofType(json, 'AWS::Lambda::Function')) {
      const vars = fn.Properties.Environment.Variables;
      assert.deepEqual(Object.keys(vars).sort(), expected, fn.Properties.FunctionName);
      for (const t of resources.tables) assert.equal(vars[t.env], t.name);
      for (const [k, v] of Object.entries(plainEnv(resources.env))) {
        if (k === 'API_KEY' || k === DEPLOY_ENV.eventsRole) continue; // deploy-time values, below
        assert.equal(vars[k], v);
      }
      // The local-only API key never ships: the deployed one is a NoEcho parameter.
      if ('API_KEY' in vars) assert.deepEqual(vars.API_KEY, { Ref: 'ApiKey' });
      // Secrets never in env: only a parameter name and a secret ARN.
      assert.equal(vars[DEPLOY_ENV.ibkrParameter], '/tradeflow/ibkr-base-url');
      assert.ok(vars[DEPLOY_ENV.llmSecret].Ref, 'LLM secret is passed as its ARN');
    }
  });

  it('overrides resources.json env values only for known names', () => {
    const { json: j } = synth(resources, { envOverrides: { LLM_PROVIDER: 'openai' } });
    for (const [, fn] of ofType(j, 'AWS::Lambda::Function')) {
      assert.equal(fn.Properties.Environment.Variables.LLM_PROVIDER, 'openai');
    }
    assert.throws(() => synth(resources, { envOverrides: { NOT_A_NAME: 'x' } }), /NOT_A_NAME/);
  });

  it('alarms on failed executions and on each function\'s errors', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ExecutionsFailed', Namespace: 'AWS/States', Threshold: 1,
    });
    const errorAlarms = ofType(json, 'AWS::CloudWatch::Alarm').filter(([, a]) => a.Properties.MetricName === 'Errors');
    assert.equal(errorAlarms.length, resources.functions.length);
  });

  it('fails synth with the build command when a function has no code', () => {
    assert.throws(
      () => synth(resources, { lambdaDir: '/nonexistent' }),
      /cargo lambda build --release --arm64 --output-format zip/,
    );
  });
});
