// Least privilege: every grant names a specific table, bucket, bus, rule prefix, parameter or secret.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PERMISSIONS, WRITE_ACTIONS, type TableAction } from '../lib/permissions';
import {
  asArray, ofType, previewResources, referencedIds, resources, statementsByFunction, synth,
} from './helpers';

/** Actions that have no resource-level permissions in IAM, so "*" is the only possible Resource. */
const STAR_ONLY = new Set([
  'xray:PutTraceSegments', 'xray:PutTelemetryRecords',
  'logs:CreateLogDelivery', 'logs:GetLogDelivery', 'logs:UpdateLogDelivery', 'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries', 'logs:PutResourcePolicy', 'logs:DescribeResourcePolicies', 'logs:DescribeLogGroups',
  'xray:GetSamplingRules', 'xray:GetSamplingTargets',
]);

for (const [label, r] of [['TradeflowStack', resources], ['with api/schedule functions', previewResources]] as const) {
  const { json } = synth(r);
  const tableIdByName = new Map(
    ofType(json, 'AWS::DynamoDB::Table').map(([id, t]) => [t.Properties.TableName as string, id]),
  );
  const bucketId = ofType(json, 'AWS::S3::Bucket')[0][0];
  const byFn = statementsByFunction(json);

  describe(`IAM (${label})`, () => {
    it('never grants an action on Resource "*" unless IAM offers nothing narrower', () => {
      for (const [id, pol] of ofType(json, 'AWS::IAM::Policy')) {
        for (const s of pol.Properties.PolicyDocument.Statement) {
          if (!asArray(s.Resource).includes('*')) continue;
          for (const a of asArray(s.Action)) assert.ok(STAR_ONLY.has(a), `${id}: ${a} on "*"`);
        }
      }
    });

    it('scopes every dynamodb and s3 statement to tables and the bucket by ARN', () => {
      for (const [fn, statements] of byFn) {
        for (const s of statements) {
          const actions = asArray(s.Action) as string[];
          if (!actions.some((a) => a.startsWith('dynamodb:') || a.startsWith('s3:'))) continue;
          assert.ok(!asArray(s.Resource).includes('*'), `${fn}: ${actions} on "*"`);
          const ids = referencedIds(s.Resource);
          assert.ok(ids.size > 0, `${fn}: ${actions} not tied to a resource`);
          for (const id of ids) assert.ok([...tableIdByName.values(), bucketId].includes(id), `${fn}: ${id}`);
        }
      }
    });

    it('gives each function exactly the tables and bucket access of infra/lib/permissions.ts', () => {
      for (const f of r.functions) {
        const p = PERMISSIONS[f.name] ?? {};
        const statements = byFn.get(f.name) ?? [];
        const touched = (prefix: string, writes: boolean) => {
          const ids = new Set<string>();
          for (const s of statements) {
            const actions = asArray(s.Action) as string[];
            const hit = actions.some((a) => a.startsWith(prefix) && (!writes || /Put|Update|Delete|Write/.test(a)));
            if (hit) referencedIds(s.Resource).forEach((id) => ids.add(id));
          }
          return [...ids].sort();
        };
        const ids = (names: string[]) => names.map((n) => tableIdByName.get(n) as string).sort();
        const tables = Object.entries(p.tables ?? {});
        const writable = tables.filter(([, a]) => a.some((x) => WRITE_ACTIONS.has(x))).map(([n]) => n);
        assert.deepEqual(touched('dynamodb:', false), ids(tables.map(([n]) => n)), `${f.name} tables`);
        assert.deepEqual(touched('dynamodb:', true), ids(writable), `${f.name} writable tables`);
        assert.deepEqual(touched('s3:', false), p.bucket ? [bucketId] : [], `${f.name} bucket`);
        const writesBucket = touched('s3:', true).length > 0;
        assert.equal(writesBucket, p.bucket === 'write' || p.bucket === 'readWrite', `${f.name} bucket writes`);
      }
    });

    it('grants on each table exactly the actions permissions.ts lists, on indexes only Query and Scan', () => {
      for (const f of r.functions) {
        for (const [name, actions] of Object.entries(PERMISSIONS[f.name]?.tables ?? {})) {
          const id = tableIdByName.get(name) as string;
          const onTable = new Set<string>();
          const onIndexes = new Set<string>();
          for (const s of byFn.get(f.name) ?? []) {
            const dynamo = (asArray(s.Action) as string[]).filter((a) => a.startsWith('dynamodb:'));
            if (!dynamo.length || !referencedIds(s.Resource).has(id)) continue;
            const index = JSON.stringify(s.Resource).includes('/index/*');
            dynamo.forEach((a) => (index ? onIndexes : onTable).add(a));
          }
          const want = (xs: TableAction[]) => xs.map((a) => `dynamodb:${a}`).sort();
          assert.deepEqual([...onTable].sort(), want(actions), `${f.name} on ${name}`);
          for (const a of onIndexes) assert.ok(a === 'dynamodb:Query' || a === 'dynamodb:Scan', `${f.name}: ${a} on ${name} indexes`);
        }
      }
    });

    it('lets only the functions that need it put events, on the configured bus only', () => {
      for (const f of r.functions) {
        const put = (byFn.get(f.name) ?? []).filter((s) => asArray(s.Action).includes('events:PutEvents'));
        assert.equal(put.length > 0, !!PERMISSIONS[f.name]?.putEvents, f.name);
        for (const s of put) assert.match(JSON.stringify(s.Resource), /:event-bus\/default"/);
      }
    });

    it('lets the EventBridge role start only this state machine', () => {
      const [roleId, role] = ofType(json, 'AWS::IAM::Role').find(([id]) => id.startsWith('EventsStartExecutionRole'))!;
      assert.equal(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal.Service, 'events.amazonaws.com');
      const smId = ofType(json, 'AWS::StepFunctions::StateMachine')[0][0];
      const statements = ofType(json, 'AWS::IAM::Policy')
        .filter(([, p]) => p.Properties.Roles.some((x: any) => x.Ref === roleId))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
      assert.deepEqual(statements, [{ Action: 'states:StartExecution', Effect: 'Allow', Resource: { Ref: smId } }]);
    });
  });
}

describe('IAM of the api function (once resources.json lists it)', () => {
  const { json } = synth(previewResources);
  const api = statementsByFunction(json).get('api')!;
  const find = (sid: string) => api.find((s) => s.Sid === sid);

  it('manages only EventBridge rules with the RULE_PREFIX', () => {
    assert.match(JSON.stringify(find('ManageStrategyRules').Resource), /:rule\/tradeflow-\*"/);
  });

  it('passes only the events role, only to EventBridge', () => {
    const s = find('PassEventsRoleOnly');
    assert.deepEqual(s.Condition, { StringEquals: { 'iam:PassedToService': 'events.amazonaws.com' } });
    assert.match(JSON.stringify(s.Resource), /EventsStartExecutionRole/);
  });

  it('starts only this state machine', () => {
    assert.match(JSON.stringify(find('StartThisStateMachine').Resource), /:stateMachine:tradeflow-trading-workflow"/);
    const starts = api.filter((s) => asArray(s.Action).includes('states:StartExecution'));
    assert.equal(starts.length, 1);
  });
});

// A function's table names (resources.json `tables`, what the template sets as its env) and its
// grants (permissions.ts) are two lists of one fact: a name without a grant fails on AWS, a
// grant without a name is dead.
describe('tables a function is told of are the tables it is granted', () => {
  it('agree for every function', () => {
    for (const f of resources.functions) {
      const told = [...(f.tables ?? [])].sort();
      const granted = Object.keys(PERMISSIONS[f.name]?.tables ?? {}).sort();
      assert.deepEqual(told, granted, `${f.name}: resources.json tables vs permissions.ts tables`);
    }
  });
});
