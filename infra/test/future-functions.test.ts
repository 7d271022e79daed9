// Functions outside the workflow ("step": null) appear when resources.json lists them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { FUTURE_FUNCTIONS } from '../lib/preview';
import { ofType, previewResources, resources, synth } from './helpers';

describe('functions outside the workflow', () => {
  const { template, json } = synth(previewResources);

  it('are deployed as functions, not as states', () => {
    template.resourceCountIs('AWS::Lambda::Function', previewResources.functions.length);
    const [, sm] = ofType(json, 'AWS::StepFunctions::StateMachine')[0];
    for (const f of FUTURE_FUNCTIONS) assert.ok(!(sm.Properties.DefinitionString as string).includes(`"${f.name}"`));
  });

  it('get a schedule rule each when they have "schedule"', () => {
    const scheduled = previewResources.functions.filter((f) => f.schedule);
    template.resourceCountIs('AWS::Events::Rule', scheduled.length);
    for (const f of scheduled) {
      template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: f.schedule, State: 'ENABLED' });
    }
  });

  it('put the http_api function behind an HTTP API with no authorizer (the function checks the key) and access logs', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 0);
    for (const [, route] of ofType(json, 'AWS::ApiGatewayV2::Route')) {
      assert.ok([undefined, 'NONE'].includes(route.Properties.AuthorizationType), JSON.stringify(route.Properties));
    }
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
    });
  });

  it('uses a JWT authorizer when configured', () => {
    const { template: t } = synth(previewResources, { apiJwt: { issuer: 'https://issuer.example', audience: ['tradeflow'] } });
    t.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', { AuthorizerType: 'JWT' });
    t.hasResourceProperties('AWS::ApiGatewayV2::Route', { AuthorizationType: 'JWT' });
  });

  it('give the api the events role ARN to put on the rules it creates', () => {
    const [roleId] = ofType(json, 'AWS::IAM::Role').find(([id]) => id.startsWith('EventsStartExecutionRole'))!;
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'api',
      Environment: { Variables: Match.objectLike({ EVENTS_ROLE_ARN: { 'Fn::GetAtt': [roleId, 'Arn'] } }) },
    });
  });

  it('the current resources.json synthesizes without them', () => {
    const { template: t } = synth(resources);
    t.resourceCountIs('AWS::ApiGatewayV2::Api', resources.functions.some((f) => f.http_api) ? 1 : 0);
  });
});
