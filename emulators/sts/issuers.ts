// Issuer strings and well-known resource identifiers, shared by the STS (which mints) and the emulated
// resources (Graph, Databricks) that validate bearer tokens.

/** v2 tokens: `{authority}/{tid}/v2.0`; the multi-tenant discovery documents carry the literal `{tenantid}`. */
export const v2Issuer = (origin: string, tenant: string): string => `${origin}/${tenant}/v2.0`

/** v1 tokens: Entra's v1 issuer is on another host and ends in a slash. It is only an identifier. */
export const v1Issuer = (tenant: string): string => `https://sts.windows.net/${tenant}/`

export const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000'
export const GRAPH_RESOURCE = 'https://graph.microsoft.com'
export const DATABRICKS_APP_ID = '2ff814a6-3304-4ab8-85cb-cd0e6f879c1d'
