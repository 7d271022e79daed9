// The IBKR Client Portal gateway's network and health (issue 13).
//
// The gateway has no authentication of its own: whoever reaches its port trades the account.
// So the functions that call it run in a VPC with the gateway host, whose security group admits
// port 5000 from those functions only; the host itself (IBeam, a headless login of the Client
// Portal gateway) has no inbound rule from anywhere else. The functions reach AWS through VPC
// endpoints (no NAT): DynamoDB and S3 gateway endpoints, interface endpoints for SSM (the
// gateway URL parameter), Secrets Manager, EventBridge and Step Functions. The host needs the
// internet (IBKR's login servers, its container image) and gets it from a public subnet; nothing
// can connect to it from there.
//
// TLS: the gateway serves its own self-signed certificate; the functions verify it by its
// SHA-256 (IBKR_TLS_CERT_SHA256, from `cdk deploy -c gatewayCertSha256=...`) or against a CA
// (IBKR_TLS_CA_PEM); accepting any certificate is refused for a remote host by the client.
//
// Health: the keep-alive reports GatewayHealthy (0/1) every minute as an Embedded Metric Format
// log line; the alarm fires after three unhealthy minutes, or when it stops reporting.
import { Duration, CfnOutput, Stack, type CfnResource } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/** The port the Client Portal gateway listens on (`listenPort` in its conf.yaml). */
export const GATEWAY_PORT = 5000;
/** The keep-alive's metric (shared/adapters/src/ibkr/session.rs). */
export const HEALTH_NAMESPACE = 'tradeflow';
export const HEALTH_METRIC = 'GatewayHealthy';

export interface IbkrGatewayProps {
  /** The functions that call the gateway: they are placed in the VPC and admitted to it. */
  callers: lambda.Function[];
  alarmTopic: sns.ITopic;
  /**
   * Run the gateway host in the VPC: an arm64 EC2 instance with IBeam (Voyz/ibeam) in Docker,
   * logging in with the credentials of the `tradeflow/ibkr-login` secret. False: bring your own
   * host and give it `hostSecurityGroup` (default true).
   */
  createHost?: boolean;
  /** Container image of IBeam (pin a digest in production). */
  ibeamImage?: string;
  instanceType?: ec2.InstanceType;
}

export class IbkrGateway extends Construct {
  readonly vpc: ec2.Vpc;
  /** Attached to every caller. */
  readonly callerSecurityGroup: ec2.SecurityGroup;
  /** Attach to the gateway host: admits port 5000 from the callers only. */
  readonly hostSecurityGroup: ec2.SecurityGroup;
  readonly host?: ec2.Instance;
  readonly loginSecret?: secretsmanager.Secret;
  readonly healthAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: IbkrGatewayProps) {
    super(scope, id);

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [
        { name: 'functions', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
        { name: 'gateway', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 26, mapPublicIpOnLaunch: false },
      ],
      gatewayEndpoints: {
        DynamoDb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
      },
    });
    // Rejected traffic only: who tried to reach the unauthenticated gateway.
    const flowLogs = new logs.LogGroup(this, 'RejectedFlowLogs', { retention: logs.RetentionDays.ONE_MONTH });
    (flowLogs.node.defaultChild as CfnResource).addMetadata('checkov', {
      skip: [{ id: 'CKV_AWS_158', comment: 'CloudWatch Logs default encryption; no customer-managed key requirement' }],
    });
    this.vpc.addFlowLog('Rejected', {
      trafficType: ec2.FlowLogTrafficType.REJECT,
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
    });
    const isolated = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    for (const [name, service] of [
      ['Ssm', ec2.InterfaceVpcEndpointAwsService.SSM],
      ['SecretsManager', ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER],
      ['Events', ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE],
      ['StepFunctions', ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS],
    ] as const) {
      this.vpc.addInterfaceEndpoint(`${name}Endpoint`, { service, subnets: isolated, privateDnsEnabled: true });
    }

    this.callerSecurityGroup = new ec2.SecurityGroup(this, 'CallerSg', {
      vpc: this.vpc,
      description: 'tradeflow functions that call the IBKR gateway',
      allowAllOutbound: true,
    });
    this.hostSecurityGroup = new ec2.SecurityGroup(this, 'HostSg', {
      vpc: this.vpc,
      description: 'IBKR Client Portal gateway: port 5000 from the tradeflow functions only',
      allowAllOutbound: true,
    });
    this.hostSecurityGroup.addIngressRule(
      this.callerSecurityGroup,
      ec2.Port.tcp(GATEWAY_PORT),
      'the tradeflow functions',
    );

    // The functions exist already (the stack builds them from resources.json): set their VPC
    // configuration here, with the ENI permissions Lambda needs for it.
    const subnets = this.vpc.selectSubnets(isolated).subnetIds;
    for (const fn of props.callers) {
      const cfn = fn.node.defaultChild as lambda.CfnFunction;
      cfn.vpcConfig = { subnetIds: subnets, securityGroupIds: [this.callerSecurityGroup.securityGroupId] };
      fn.role?.addManagedPolicy(
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'),
      );
      // The VPC must be complete (endpoints, routes) before a function in it starts.
      cfn.node.addDependency(this.vpc);
      const meta = (cfn.getMetadata('checkov') as { skip?: { id: string; comment: string }[] }) ?? {};
      cfn.addMetadata('checkov', {
        skip: (meta.skip ?? []).filter((s) => s.id !== 'CKV_AWS_117'),
      });
    }

    if (props.createHost ?? true) {
      this.loginSecret = new secretsmanager.Secret(this, 'LoginSecret', {
        secretName: 'tradeflow/ibkr-login',
        description: 'IBKR username and password for IBeam: {"IBEAM_ACCOUNT": "...", "IBEAM_PASSWORD": "..."}',
      });
      const role = new iam.Role(this, 'HostRole', {
        assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
        managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
      });
      this.loginSecret.grantRead(role);
      const image = props.ibeamImage ?? 'voyz/ibeam:0.5.8';
      const region = Stack.of(this).region;
      const userData = ec2.UserData.forLinux();
      userData.addCommands(
        'set -euo pipefail',
        'dnf install -y docker jq',
        'systemctl enable --now docker',
        `secret=$(aws secretsmanager get-secret-value --region ${region} --secret-id ${this.loginSecret.secretName} --query SecretString --output text)`,
        'echo "$secret" | jq -r \'to_entries[] | "\\(.key)=\\(.value)"\' > /etc/ibeam.env',
        'chmod 600 /etc/ibeam.env',
        // The gateway's conf.yaml must admit the functions' subnets in `ips.allow` (IBeam reads a
        // custom one from its inputs directory, mounted here): see infra/README.md.
        'mkdir -p /srv/inputs',
        `docker run -d --restart unless-stopped --name ibeam --env-file /etc/ibeam.env -e IBEAM_GATEWAY_BASE_URL=https://localhost:${GATEWAY_PORT} -v /srv/inputs:/srv/inputs -p ${GATEWAY_PORT}:${GATEWAY_PORT} ${image}`,
      );
      this.host = new ec2.Instance(this, 'Host', {
        vpc: this.vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
        associatePublicIpAddress: true,
        securityGroup: this.hostSecurityGroup,
        instanceType: props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.SMALL),
        machineImage: ec2.MachineImage.latestAmazonLinux2023({ cpuType: ec2.AmazonLinuxCpuType.ARM_64 }),
        role,
        userData,
        requireImdsv2: true,
        detailedMonitoring: true,
        ebsOptimized: true,
        blockDevices: [{ deviceName: '/dev/xvda', volume: ec2.BlockDeviceVolume.ebs(16, { encrypted: true }) }],
      });
      (this.host.node.defaultChild as CfnResource).addMetadata('checkov', {
        skip: [{
          id: 'CKV_AWS_88',
          comment: 'public IP for outbound only (IBKR login servers, the image); the security group admits port 5000 from the tradeflow functions and nothing else',
        }],
      });
      (this.loginSecret.node.defaultChild as CfnResource).addMetadata('checkov', {
        skip: [
          { id: 'CKV_AWS_149', comment: 'AWS-managed Secrets Manager key: one secret read by the gateway host role' },
        ],
      });
      new CfnOutput(Stack.of(this), 'IbkrGatewayHostPrivateDns', {
        value: `https://${this.host.instancePrivateDnsName}:${GATEWAY_PORT}/v1/api`,
        description: 'Put this in the /tradeflow/ibkr-base-url parameter (cdk deploy -c ibkrBaseUrl=...)',
      });
    }

    // Missing data breaches: a keep-alive that stops reporting is as bad as a logged-out gateway.
    this.healthAlarm = new cloudwatch.Alarm(this, 'HealthAlarm', {
      alarmName: 'tradeflow-ibkr-gateway-unhealthy',
      alarmDescription:
        'IBKR gateway not usable for 3 minutes (logged out, competing login, unreachable) or the keep-alive stopped reporting: see the #ibkr-session item and the keep-alive logs',
      metric: new cloudwatch.Metric({
        namespace: HEALTH_NAMESPACE,
        metricName: HEALTH_METRIC,
        dimensionsMap: { Gateway: 'ibkr' },
        statistic: 'Minimum',
        period: Duration.minutes(1),
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    this.healthAlarm.addAlarmAction(new cwActions.SnsAction(props.alarmTopic));
    this.healthAlarm.addOkAction(new cwActions.SnsAction(props.alarmTopic));
  }
}
