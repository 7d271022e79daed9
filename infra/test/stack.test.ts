import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { plainEnv } from '../lib/resources';
import { DEPLOY_ENV } from '../lib/tradeflow-stack';
import { ofType, referencedIds, resources, statementsByFunction, synth } from './helpers';

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

  const envOf = (j: typeof json) =>
    Object.fromEntries(
      ofType(j, 'AWS::Lambda::Function').map(([, fn]) => [
        fn.Properties.FunctionName as string,
        (fn.Properties.Environment?.Variables ?? {}) as Record<string, any>,
      ]),
    );
  const tableEnv = Object.fromEntries(resources.tables.map((t) => [t.name, t.env]));

  it('gives each function exactly its tables and the env names its resources.json entry lists', () => {
    const vars = envOf(json);
    for (const f of resources.functions) {
      const expected = [...(f.tables ?? []).map((t) => tableEnv[t]), ...(f.env ?? [])].sort();
      assert.deepEqual(Object.keys(vars[f.name]).sort(), expected, f.name);
      for (const t of f.tables ?? []) assert.equal(vars[f.name][tableEnv[t]], t);
      for (const [k, v] of Object.entries(plainEnv(resources.env))) {
        if (k in vars[f.name]) assert.equal(vars[f.name][k], v, `${f.name} ${k}`);
      }
    }
  });

  it('knows a value for every deploy_env name of resources.json', () => {
    assert.deepEqual(Object.keys(plainEnv(resources.deploy_env as Record<string, string>)).sort(),
      Object.values(DEPLOY_ENV).sort());
  });

  it('ships no key, no local-only name and no local value in any function\'s env', () => {
    for (const [name, vars] of Object.entries(envOf(json))) {
      for (const k of ['API_KEY', 'IBKR_BASE_URL', 'IBKR_ACCOUNT_ID', 'OPENAI_API_KEY', 'LLM_PROVIDER']) {
        assert.ok(!(k in vars), `${name} gets ${k}`);
      }
      const text = JSON.stringify(vars);
      for (const local of Object.values(plainEnv(resources.local_env))) assert.ok(!text.includes(local), `${name}: ${local}`);
      assert.ok(!text.includes(resources.local_api_key), name);
    }
    assert.equal(Object.keys((json as any).Parameters ?? {}).filter((p) => p === 'ApiKey').length, 0);
  });

  it('generates the API key in Secrets Manager and gives only the api function its ARN and read access', () => {
    const [secretId] = ofType(json, 'AWS::SecretsManager::Secret').find(([, s]) => s.Properties.Name === 'tradeflow/api-key')!;
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Name: 'tradeflow/api-key',
      GenerateSecretString: Match.objectLike({ PasswordLength: 40, ExcludePunctuation: true }),
    });
    for (const [name, vars] of Object.entries(envOf(json))) {
      if (name === 'api') assert.deepEqual(vars[DEPLOY_ENV.apiKeySecret], { Ref: secretId });
      else assert.ok(!(DEPLOY_ENV.apiKeySecret in vars), name);
    }
    const readers = [...statementsByFunction(json)]
      .filter(([, statements]) => statements.some((s) => referencedIds(s.Resource).has(secretId)))
      .map(([name]) => name);
    assert.deepEqual(readers, ['api']);
  });

  it('gives the IBKR callers the gateway URL and account parameter names, and read access to both', () => {
    const params = Object.fromEntries(ofType(json, 'AWS::SSM::Parameter').map(([id, p]) => [p.Properties.Name, id]));
    const url = params['/tradeflow/ibkr-base-url'];
    const account = params['/tradeflow/ibkr-account-id'];
    assert.ok(url && account, JSON.stringify(params));
    const statements = statementsByFunction(json);
    for (const [name, vars] of Object.entries(envOf(json))) {
      if (!(DEPLOY_ENV.ibkrParameter in vars)) continue;
      assert.deepEqual(vars[DEPLOY_ENV.ibkrParameter], { Ref: url }, name);
      assert.deepEqual(vars[DEPLOY_ENV.ibkrAccountParameter], { Ref: account }, name);
      const read = (id: string) => statements.get(name)!.some((s) => referencedIds(s.Resource).has(id)
        || JSON.stringify(s.Resource).includes(id));
      assert.ok(read(url) && read(account), name);
    }
  });

  it('stores the gateway URL and account given as context, placeholders otherwise', () => {
    const given = synth(resources, { ibkrBaseUrl: 'https://gw.internal:5000/v1/api', ibkrAccountId: 'U7654321' }).template;
    given.hasResourceProperties('AWS::SSM::Parameter', { Name: '/tradeflow/ibkr-account-id', Value: 'U7654321' });
    given.hasResourceProperties('AWS::SSM::Parameter', { Name: '/tradeflow/ibkr-base-url', Value: 'https://gw.internal:5000/v1/api' });
    template.hasResourceProperties('AWS::SSM::Parameter', { Name: '/tradeflow/ibkr-account-id', Value: 'not-configured' });
  });

  it('overrides resources.json env values only for known names, for the functions that list them', () => {
    const vars = envOf(synth(resources, { envOverrides: { ORDER_MAX_POLLS: '20' } }).json);
    for (const f of resources.functions) {
      assert.equal(vars[f.name].ORDER_MAX_POLLS, (f.env ?? []).includes('ORDER_MAX_POLLS') ? '20' : undefined, f.name);
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
