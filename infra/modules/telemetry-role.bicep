// Monitoring Metrics Publisher for lead-notifier's identity on its
// Application Insights component: with local auth off, the host's telemetry
// is accepted only with an Entra token of a principal holding this role.
// Used by ../main.bicep (a module, because the component is created by the
// monitoring module whose output the app's settings need).

param appInsightsName string
param principalId string

var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
