// Storage Table Data Contributor for lead-notifier's identity on the lead
// account: it reads the lead table Partner Center writes, writes leads posted
// to LeadWebhook into it, and creates and writes its state table (position
// and delivery ledger) there. No blob or queue role: it uses only tables.
// Deployed into the lead account's resource group, which may differ from the
// app's. Used by ../main.bicep.

param leadAccountName string
param principalId string

var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

resource leadStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: leadAccountName
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(leadStorage.id, principalId, storageTableDataContributor)
  scope: leadStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
