// Proves the deployed definition is the local file: same text, same states, each Task on its step's function.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { stepFunctions } from '../lib/resources';
import { aslText, ofType, resources, synth } from './helpers';

const { json, template } = synth();
const [, sm] = ofType(json, 'AWS::StepFunctions::StateMachine')[0];
const fnByLogicalId = new Map(
  ofType(json, 'AWS::Lambda::Function').map(([id, r]) => [id, r.Properties.FunctionName as string]),
);

/** Substitutes like CloudFormation: ${Key} -> the ARN of the function the substitution points at. */
function deployedDefinition() {
  const subs: Record<string, { 'Fn::GetAtt': [string, string] }> = sm.Properties.DefinitionSubstitutions;
  const text = (sm.Properties.DefinitionString as string).replace(/\$\{([A-Za-z0-9_]+)\}/g, (_m, key: string) => {
    const ref = subs[key];
    assert.ok(ref, `no DefinitionSubstitutions entry for \${${key}}`);
    assert.equal(ref['Fn::GetAtt'][1], 'Arn');
    return `arn:aws:lambda:eu-west-1:123456789012:function:${fnByLogicalId.get(ref['Fn::GetAtt'][0])}`;
  });
  return JSON.parse(text);
}

describe('state machine', () => {
  it('is the Standard machine named in resources.json, with logging ALL and tracing', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineName: resources.state_machine.name,
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
    });
  });

  it('deploys the statemachine file byte for byte (inline, not an S3 asset)', () => {
    assert.equal(sm.Properties.DefinitionString, aslText);
    assert.equal(sm.Properties.DefinitionS3Location, undefined);
  });

  it('substitutes exactly the asl_arn placeholders of the step functions', () => {
    const expected = stepFunctions(resources).map((f) => f.asl_arn).sort();
    assert.deepEqual(Object.keys(sm.Properties.DefinitionSubstitutions).sort(), expected);
  });

  it('has the same states after substitution as the local file, each Task invoking its step function', () => {
    const local = JSON.parse(aslText);
    const deployed = deployedDefinition();
    assert.deepEqual(Object.keys(deployed.States), Object.keys(local.States));
    assert.equal(deployed.StartAt, local.StartAt);
    for (const f of stepFunctions(resources)) {
      const state = deployed.States[f.step as string];
      assert.ok(state, `step ${f.step} is not a state`);
      assert.equal(state.Type, 'Task');
      assert.equal(state.Resource, `arn:aws:lambda:eu-west-1:123456789012:function:${f.name}`);
    }
    const tasks = Object.entries(deployed.States).filter(([, s]: [string, any]) => s.Type === 'Task');
    assert.deepEqual(tasks.map(([n]) => n).sort(), stepFunctions(resources).map((f) => f.step).sort());
  });

  it('may invoke only the step functions', () => {
    const role = sm.Properties.RoleArn['Fn::GetAtt'][0];
    const policies = ofType(json, 'AWS::IAM::Policy').filter(([, p]) => p.Properties.Roles.some((r: any) => r.Ref === role));
    const invoked = new Set<string>();
    for (const [, p] of policies) {
      for (const s of p.Properties.PolicyDocument.Statement) {
        if (s.Action !== 'lambda:InvokeFunction') continue;
        for (const r of [s.Resource].flat()) {
          const id = r['Fn::GetAtt']?.[0] ?? r['Fn::Join'][1][0]['Fn::GetAtt'][0];
          invoked.add(fnByLogicalId.get(id) as string);
        }
      }
    }
    assert.deepEqual([...invoked].sort(), stepFunctions(resources).map((f) => f.name).sort());
  });
});
