// Monitoring for lead-notifier: a Log Analytics workspace, a workspace-based
// Application Insights component with local (instrumentation key) auth off,
// so only Entra-authenticated telemetry is accepted, and an alert rule with
// an action group that mails the operator when LeadNotifier invocations fail.
// Used by ../main.bicep.

param location string
param tags object
@description('Prefix of the resource names (the function app\'s name).')
param namePrefix string
@description('Address mailed when LeadNotifier invocations fail.')
param operatorEmail string
param logRetentionDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-insights'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Telemetry only with an Entra token (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
    DisableLocalAuth: true
  }
}

resource operators 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'leadnotify'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: operatorEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// A failed LeadNotifier invocation is a timer run that left an owed alert
// undelivered or could not run at all; its reason is in the run summary.
resource failedRuns 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-failed-runs'
  location: location
  tags: tags
  properties: {
    displayName: 'lead-notifier: LeadNotifier invocations failed'
    description: 'A LeadNotifier run failed: an alert owed to sales was not delivered or the run could not read storage. Query Host.Function.Console traces for the run summary.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'requests | where name == "LeadNotifier" and success == false'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        operators.id
      ]
    }
  }
}

output appInsightsName string = appInsights.name
// Not a secret: with local auth off, the instrumentation key alone cannot
// send telemetry.
output connectionString string = appInsights.properties.ConnectionString
