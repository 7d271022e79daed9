import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PERMISSIONS } from '../lib/permissions';
import { GATEWAY_PORT, HEALTH_METRIC, HEALTH_NAMESPACE } from '../lib/gateway';
import { ofType, resources, synth } from './helpers';

const { json } = synth();
const byId = json.Resources;
const functions = ofType(json, 'AWS::Lambda::Function');
const callers = resources.functions.filter((f) => PERMISSIONS[f.name]?.ibkr).map((f) => f.name);

const sgOf = (fn: any): string[] =>
  (fn.Properties.VpcConfig?.SecurityGroupIds ?? []).map((g: any) => g['Fn::GetAtt'][0]);

describe('IBKR gateway network (infra/lib/gateway.ts)', () => {
  it('puts every function that calls the gateway, and only those, in the VPC with one security group', () => {
    assert.ok(callers.length >= 6, `${callers}`);
    const groups = new Set<string>();
    for (const [, fn] of functions) {
      const inVpc = fn.Properties.VpcConfig !== undefined;
      assert.equal(inVpc, callers.includes(fn.Properties.FunctionName), fn.Properties.FunctionName);
      if (inVpc) {
        assert.equal(fn.Properties.VpcConfig.SubnetIds.length, 2);
        sgOf(fn).forEach((g) => groups.add(g));
      }
    }
    assert.equal(groups.size, 1);
  });

  it('admits the gateway port from the callers and nothing else, and the host has no other ingress', () => {
    const [callerSg] = new Set(functions.flatMap(([, fn]) => sgOf(fn)));
    const ingress = ofType(json, 'AWS::EC2::SecurityGroupIngress');
    assert.equal(ingress.length, 1);
    const rule = ingress[0][1].Properties;
    assert.equal(rule.FromPort, GATEWAY_PORT);
    assert.equal(rule.ToPort, GATEWAY_PORT);
    assert.equal(rule.SourceSecurityGroupId['Fn::GetAtt'][0], callerSg);
    for (const [, sg] of ofType(json, 'AWS::EC2::SecurityGroup')) {
      const inline = sg.Properties.SecurityGroupIngress ?? [];
      // The interface endpoints take HTTPS from the VPC; nothing else has an inline rule.
      const endpoint = String(sg.Properties.GroupDescription).includes('Endpoint');
      assert.ok(endpoint || inline.length === 0, JSON.stringify(sg.Properties));
      for (const r of inline) assert.equal(r.FromPort, 443);
    }
    const [, host] = ofType(json, 'AWS::EC2::Instance')[0];
    const groups = host.Properties.SecurityGroupIds ?? host.Properties.NetworkInterfaces[0].GroupSet;
    const hostSg = groups.map((g: any) => g['Fn::GetAtt'][0]);
    assert.deepEqual(hostSg, [rule.GroupId['Fn::GetAtt'][0]]);
    assert.equal(byId[hostSg[0]].Properties.GroupDescription.includes('5000'), true);
  });

  it('reaches AWS through endpoints, with no NAT gateway', () => {
    assert.equal(ofType(json, 'AWS::EC2::NatGateway').length, 0);
    const endpoints = ofType(json, 'AWS::EC2::VPCEndpoint').map(([, e]) => JSON.stringify(e.Properties.ServiceName));
    for (const service of ['dynamodb', 's3', 'ssm', 'secretsmanager', 'events', 'states']) {
      assert.ok(endpoints.some((e) => e.includes(`.${service}`)), `${service}: ${endpoints}`);
    }
  });

  it('alarms when the keep-alive reports an unusable gateway for 3 minutes or stops reporting', () => {
    const alarms = ofType(json, 'AWS::CloudWatch::Alarm').filter(([, a]) => a.Properties.MetricName === HEALTH_METRIC);
    assert.equal(alarms.length, 1);
    const a = alarms[0][1].Properties;
    assert.equal(a.Namespace, HEALTH_NAMESPACE);
    assert.deepEqual(a.Dimensions, [{ Name: 'Gateway', Value: 'ibkr' }]);
    assert.equal(a.ComparisonOperator, 'LessThanThreshold');
    assert.equal(a.Threshold, 1);
    assert.equal(a.EvaluationPeriods, 3);
    assert.equal(a.TreatMissingData, 'breaching');
    assert.ok(a.AlarmActions.length === 1 && a.OKActions.length === 1);
  });

  it('never deploys "accept any certificate": IBKR_ALLOW_SELF_SIGNED stays false', () => {
    for (const [, fn] of functions) {
      const vars = fn.Properties.Environment?.Variables ?? {};
      // Only the IBKR callers get the gateway settings at all.
      assert.equal(vars.IBKR_ALLOW_SELF_SIGNED, 'IBKR_BASE_URL_PARAMETER' in vars ? 'false' : undefined);
    }
  });

  it('without a host, keeps the network and the alarm', () => {
    const bare = synth(resources, { gatewayHost: false }).json;
    assert.equal(ofType(bare, 'AWS::EC2::Instance').length, 0);
    assert.equal(ofType(bare, 'AWS::EC2::SecurityGroupIngress').length, 1);
  });
});
