// lead-notifier on Azure Functions Flex Consumption (FC1, Linux).
//
// Creates, in the deployment's resource group: a Flex Consumption plan and
// function app running the custom handler; a host storage account without
// shared keys (the Functions host and the deployment package reach it with
// the app's identity); optionally the lead account Partner Center writes to
// (with shared keys, because Partner Center only writes with a connection
// string); Log Analytics and Application Insights without local auth; a Key
// Vault in RBAC mode for the secret settings; an alert that mails an operator
// when LeadNotifier invocations fail. The app's system-assigned identity gets
// exactly the roles listed under "Roles" below.
//
// Deploy: `cargo xtask deploy --resource-group <group> --location <region>`,
// or `az deployment group create -g <group> -f infra/main.bicep
// -p @infra/main.parameters.json` followed by the zip deployment. Parameters:
// infra/main.parameters.example.json. Re-deploying updates in place.
//
// Settings use lead-notifier's own names; an empty value counts as unset for
// lead-notifier, and is not written.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------- names

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Name of the function app (global: part of https://<name>.azurewebsites.net).')
param appName string = 'lead-notifier-${uniqueString(resourceGroup().id)}'

@description('Name of the host storage account (3-24 lowercase letters and digits).')
@maxLength(24)
param hostStorageName string = 'lnhost${uniqueString(resourceGroup().id)}'

@description('Name of the Key Vault holding the secret settings (3-24 letters, digits, dashes).')
@maxLength(24)
param keyVaultName string = 'ln-${uniqueString(resourceGroup().id)}'

@description('Tags put on every resource.')
param tags object = {}

// ---------------------------------------------------------------- Flex Consumption

@description('Memory of one instance in MB (Flex Consumption sizes).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 512

@description('Most instances the app scales out to (Azure enforces the plan\'s current lower and upper bounds).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

// ---------------------------------------------------------------- lead account

@description('Create the lead account (true), or use an existing one named by leadAccountName in leadAccountResourceGroup (false).')
param createLeadAccount bool = true

@description('Storage account Partner Center writes leads to (3-24 lowercase letters and digits).')
@maxLength(24)
param leadAccountName string = 'lnleads${uniqueString(resourceGroup().id)}'

@description('Resource group of an existing lead account (createLeadAccount = false).')
param leadAccountResourceGroup string = resourceGroup().name

// ---------------------------------------------------------------- lead-notifier settings

@description('LEADS_TABLE: the lead table Partner Center writes.')
param leadsTable string = 'MarketplaceLeads'

@description('LEADS_STATE_TABLE: position and delivery ledger (created when missing).')
param stateTable string = 'LeadNotifierState'

@description('LEADS_START_FROM: where the very first run starts (RFC 3339 time, a look-back such as 24h, or beginning).')
param startFrom string = '24h'

@description('LEADS_POLL_SCHEDULE: six-field NCRONTAB in UTC.')
param pollSchedule string = '0 */5 * * * *'

@description('EMAIL_VIA: smtp, graph, or empty (email off unless smtpHost is set).')
@allowed([
  ''
  'smtp'
  'graph'
])
param emailVia string = ''

@description('EMAIL_FROM: sender (with graph, the sending mailbox).')
param emailFrom string = ''

@description('EMAIL_TO: recipients, comma-separated.')
param emailTo string = ''

@description('SMTP_HOST: mail server; email is on when set.')
param smtpHost string = ''

@description('SMTP_PORT: empty for the default of SMTP_SECURITY.')
param smtpPort string = ''

@description('SMTP_SECURITY: starttls, tls (or none, for local test servers only); empty for starttls.')
param smtpSecurity string = ''

@description('SMTP_AUTH: password or oauth2; empty for password when an SMTP_PASSWORD is given.')
param smtpAuth string = ''

@description('SMTP_USERNAME: SMTP login (with oauth2, the mailbox address).')
param smtpUsername string = ''

@description('ROUTE_<KIND>[_<NAME>] settings, by setting name: {"ROUTE_TEAMS_CRM": "offer=contoso.crm-*"}.')
param routes object = {}

@description('Any other non-secret lead-notifier settings, by setting name: {"EMAIL_TO_EMEA": "emea@contoso.com", "DIGEST_AFTER": "20"}.')
param settings object = {}

@description('Names of the settings whose values live in Key Vault, e.g. ["SMTP_PASSWORD", "TEAMS_WEBHOOK_URL", "WEBHOOK_URL_CRM", "WEBHOOK_SECRET_CRM"]. The app reads them through Key Vault references.')
param secretSettingNames array = []

@description('Values of secret settings, by setting name (SMTP_PASSWORD, TEAMS_WEBHOOK_URL…, SLACK_WEBHOOK_URL…, WEBHOOK_URL…, WEBHOOK_SECRET…). Each non-empty one is written into Key Vault; an omitted one keeps the value Key Vault already holds.')
@secure()
param secretValues object = {}

// ---------------------------------------------------------------- operations

@description('Address mailed when LeadNotifier invocations fail.')
param operatorEmail string

@description('Days Log Analytics keeps the logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// ---------------------------------------------------------------- derived names

// The package goes into this container of the host account (OneDeploy).
var deploymentContainerName = 'app-package-${take(toLower(appName), 32)}'
// Built from the name rather than read from the account, so an existing lead
// account in another resource group needs no reference here.
var leadTableEndpoint = 'https://${leadAccountName}.table.${environment().suffixes.storage}'

// Roles, by their built-in ids.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

// ---------------------------------------------------------------- host storage

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_43:the name is a parameter (at most 24 characters, default lowercase letters and digits); Azure validates it
  name: hostStorageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    // The host and the deployment reach this account with the app's identity.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
  //checkov:skip=CKV_AZURE_35:Flex Consumption without a virtual network reaches its host storage over the public endpoint; access needs the app's Entra identity (shared keys are off)
  //checkov:skip=CKV_AZURE_59:same reason as CKV_AZURE_35: public network access with identity-only authorization
  //checkov:skip=CKV_AZURE_206:the host account holds only locks, keys and the deployment package, all rebuilt by a redeploy: locally redundant is enough
  //checkov:skip=CKV_AZURE_33:no queues are used on the host account
}

resource hostBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: hostStorage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: hostBlobs
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// ---------------------------------------------------------------- lead account

resource leadStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = if (createLeadAccount) {
  //checkov:skip=CKV_AZURE_43:the name is a parameter (at most 24 characters, default lowercase letters and digits); Azure validates it
  //checkov:skip=CKV_AZURE_206:checkov does not read the properties of a conditional resource; this one is Standard_GRS
  //checkov:skip=CKV_AZURE_44:checkov does not read the properties of a conditional resource; this one sets minimumTlsVersion TLS1_2
  name: leadAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_GRS'
  }
  properties: {
    // Partner Center writes leads only with a connection string (an account
    // key): shared keys must stay on for this account.
    allowSharedKeyAccess: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
  //checkov:skip=CKV_AZURE_35:Partner Center writes from Microsoft's service over the public endpoint and publishes no address range to allow
  //checkov:skip=CKV_AZURE_59:same reason as CKV_AZURE_35
  //checkov:skip=CKV_AZURE_33:no queues are used on the lead account
  //checkov:skip=CKV2_AZURE_40:Partner Center's Azure Table destination only accepts a connection string, which needs shared key access
}

// ---------------------------------------------------------------- monitoring

module monitoring 'modules/monitoring.bicep' = {
  name: 'lead-notifier-monitoring'
  params: {
    location: location
    tags: tags
    namePrefix: appName
    operatorEmail: operatorEmail
    logRetentionDays: logRetentionDays
  }
}

// ---------------------------------------------------------------- Key Vault

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Access through Azure roles only (no access policies).
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // Deleted secrets and the vault stay recoverable for 90 days; the vault
    // name stays taken meanwhile (choose another keyVaultName to start over).
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
  //checkov:skip=CKV_AZURE_109:Flex Consumption without a virtual network resolves Key Vault references over the public endpoint; reading needs the Key Vault Secrets User role
  //checkov:skip=CKV_AZURE_189:same reason as CKV_AZURE_109
  //checkov:skip=CKV2_AZURE_32:no private endpoint: the app runs without a virtual network
}

// One secret per given value; the name is the setting's, lower case with
// dashes (Key Vault names allow no underscores).
resource secrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for name in secretSettingNames: if (contains(secretValues, name) && !empty(secretValues[name])) {
  parent: vault
  name: replace(toLower(name), '_', '-')
  properties: {
    value: secretValues[name]
    contentType: 'text/plain'
  }
  //checkov:skip=CKV_AZURE_41:webhook URLs, signing secrets and SMTP passwords are rotated by their issuers, not on a fixed expiry; an expiring secret would silently stop alerts
}]

// ---------------------------------------------------------------- app settings

// Platform settings (documented by Azure Functions and Application Insights).
var platformSettings = [
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__blobServiceUri', value: hostStorage.properties.primaryEndpoints.blob }
  { name: 'AzureWebJobsStorage__tableServiceUri', value: hostStorage.properties.primaryEndpoints.table }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: monitoring.outputs.connectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD' }
]

// lead-notifier's own settings (see README "Settings").
var productSettings = [
  { name: 'LEADS_STORAGE_CONNECTION__tableServiceUri', value: leadTableEndpoint }
  { name: 'LEADS_STORAGE_CONNECTION__credential', value: 'managedidentity' }
  { name: 'LEADS_TABLE', value: leadsTable }
  { name: 'LEADS_STATE_TABLE', value: stateTable }
  { name: 'LEADS_START_FROM', value: startFrom }
  { name: 'LEADS_POLL_SCHEDULE', value: pollSchedule }
  { name: 'EMAIL_VIA', value: emailVia }
  { name: 'EMAIL_FROM', value: emailFrom }
  { name: 'EMAIL_TO', value: emailTo }
  { name: 'SMTP_HOST', value: smtpHost }
  { name: 'SMTP_PORT', value: smtpPort }
  { name: 'SMTP_SECURITY', value: smtpSecurity }
  { name: 'SMTP_AUTH', value: smtpAuth }
  { name: 'SMTP_USERNAME', value: smtpUsername }
]

var routeSettings = [for route in items(routes): {
  name: route.key
  value: route.value
}]

var otherSettings = [for setting in items(settings): {
  name: setting.key
  value: setting.value
}]

// Resolved by the platform with the app's identity; no version, so a new
// secret version is picked up without redeploying.
var secretReferences = [for name in secretSettingNames: {
  name: name
  value: '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${replace(toLower(name), '_', '-')}/)'
}]

var appSettings = filter(concat(routeSettings, otherSettings, productSettings, secretReferences, platformSettings), s => !empty(s.value))

// ---------------------------------------------------------------- plan and app

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${appName}-plan'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
  //checkov:skip=CKV_AZURE_211:Flex Consumption has no dedicated instances to reserve; it scales per function group
  //checkov:skip=CKV_AZURE_212:same reason as CKV_AZURE_211
  //checkov:skip=CKV_AZURE_225:zone redundancy is a separate Flex option with its own cost; a lead notifier catches up from the table after an outage
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_17:Partner Center's HTTPS endpoint destination posts without a client certificate; LeadWebhook is protected by a function key
  //checkov:skip=CKV_AZURE_56:App Service Authentication would refuse Partner Center, which cannot sign in; LeadWebhook is protected by a function key
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: appSettings
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
  //checkov:skip=CKV_AZURE_221:the public endpoint is what Partner Center posts leads to
  //checkov:skip=CKV_AZURE_222:same reason as CKV_AZURE_221
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales instances on demand; there are no always-ready instances to count for a timer and a webhook
  //checkov:skip=CKV_AZURE_213:lead-notifier has no health endpoint; the Functions host restarts a custom handler that stops answering
}

// ---------------------------------------------------------------- roles

// Storage Blob Data Owner on the host account: the Functions host keeps its
// keys, timer schedule and singleton locks (blob leases) there, and the
// platform reads the deployment package from its container. Owner, not
// Contributor, because the host acquires and breaks leases on its blobs.
resource hostBlobRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, app.id, storageBlobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Table Data Contributor on the host account: the host writes its
// diagnostic events to a table of AzureWebJobsStorage. No queue role: a timer
// and an HTTP function use no host queues.
resource hostTableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, app.id, storageTableDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Storage Table Data Contributor on the lead account: lead-notifier reads the
// lead table, writes posted leads into it, and creates and writes its state
// table there. In the lead account's own resource group, which may differ.
module leadTableRole 'modules/lead-table-role.bicep' = {
  name: 'lead-notifier-lead-table-role'
  scope: resourceGroup(leadAccountResourceGroup)
  params: {
    leadAccountName: leadAccountName
    principalId: app.identity.principalId
  }
  dependsOn: [
    leadStorage
  ]
}

// Key Vault Secrets User on the vault: the platform reads the secret settings
// with the app's identity. Read only; the deployment writes the secrets.
resource vaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, app.id, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Monitoring Metrics Publisher on Application Insights: with local auth off,
// telemetry is accepted only with an Entra token of a principal holding it.
module telemetryRole 'modules/telemetry-role.bicep' = {
  name: 'lead-notifier-telemetry-role'
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    principalId: app.identity.principalId
  }
}

// ---------------------------------------------------------------- outputs (no secrets)

output functionAppName string = app.name
output functionAppHost string = app.properties.defaultHostName
output leadWebhookUrl string = 'https://${app.properties.defaultHostName}/api/LeadWebhook'
output leadAccountName string = leadAccountName
output leadAccountResourceGroup string = leadAccountResourceGroup
output leadTableEndpoint string = leadTableEndpoint
output keyVaultName string = vault.name
output secretSettingNames array = secretSettingNames
output appInsightsName string = monitoring.outputs.appInsightsName
// lead-notifier's non-secret settings, for `lead-notifier check --settings`.
output checkSettings array = filter(concat(routeSettings, otherSettings, productSettings), s => !empty(s.value))
