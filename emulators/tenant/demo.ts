// The demo tenant: a small, hand-written Contoso that a walk-through can use by name. Every id is a fixed
// literal, so tokens, delta links and docs stay valid from one run to the next.
//
//   All Staff
//   ├── Engineering ─┬── Data Platform ── Data Platform On-call   (4 levels)
//   │                ├── Platform, Web, Security
//   ├── Finance ─────┬── Payroll
//   │                └── Analysts          ┐ two groups named "Analysts"
//   ├── Sales ───────┬── Analysts          ┘ (duplicate display names are real)
//   │                ├── Sales EMEA, Sales Americas
//   ├── Marketing, People, Legal, IT
//   Databricks Users  = Data Platform + both Analysts + the Nightly ETL and BI Refresh service principals
//   Databricks Admins = Chloé Dubois, Zara Ahmed + Nightly ETL
//   External Collaborators = the guest;  Contoso Social Club = a distribution list (not security-enabled)
//
// Every user signs in (password grant, via the public `demo-cli` app) with DEMO_PASSWORD.

import type { ApplicationFixture, GroupFixture, ServicePrincipalFixture, TenantFixture, UserFixture } from './model.ts'

export const DEMO_TENANT_ID = '8f2c5a1e-4b7d-4e3a-9c61-2d5e8f0a7b13'
export const DEMO_DOMAIN = 'contoso.onmicrosoft.com'
/** The password of every demo user. */
export const DEMO_PASSWORD = 'Demo-Passw0rd!'

/** The resolver's own app registration (client id, secret, and its App ID URI as a resource). */
export const DEMO_RESOLVER_APP_ID = 'bf029f52-4104-455f-8f04-7bbe45984b5b'
export const DEMO_RESOLVER_SECRET = 'jir8Q~Xk2vR9mP4tL7wQ1nB5cZ8hD3fG6jS0aE2y'
export const DEMO_RESOLVER_URI = `api://${DEMO_RESOLVER_APP_ID}`
export const DEMO_RESOLVER_SP_ID = 'bb3a1637-7fc7-4bde-a082-f5e5d7bc9c79'

/** The "Nightly ETL" workload: an application with a secret; its service principal is in Databricks groups. */
export const DEMO_ETL_APP_ID = 'ea824dd4-b077-4744-82ed-9b0a8b9df895'
export const DEMO_ETL_SECRET = 'etl8Q~Vb6nM2qW9eR4tY7uI1oP5aS8dF3gH6jK0l'
export const DEMO_ETL_SP_ID = '9ddce6b0-946f-4a8e-bbfb-ebe77ebc78e9'

/** The "BI Refresh" workload. */
export const DEMO_BI_APP_ID = 'd0ce1345-4b9c-42da-9af7-0ad1137da900'
export const DEMO_BI_SECRET = 'bir8Q~Zx3cV6bN9mQ2wE5rT8yU1iO4pA7sD0fG3h'
export const DEMO_BI_SP_ID = '57386f7a-8b3b-4763-a658-30f23b20abc0'

/** A public client (no secret) for the password grant. */
export const DEMO_CLI_APP_ID = 'f382c630-5885-41dc-a941-548d2b9a205e'
export const DEMO_CLI_SP_ID = '83ed258d-71d5-438a-961f-535aea895873'

/** Alice Martin, data engineer in Data Platform On-call: four levels of nesting up to All Staff. */
export const DEMO_ALICE_UPN = 'alice.martin@contoso.onmicrosoft.com'
export const DEMO_ALICE_ID = '4f43d243-6e71-4e81-8f39-1aa58140cac4'
/** Sean O'Brien: an apostrophe in the display name and in the UPN (OData string literals must double it). */
export const DEMO_OBRIEN_UPN = 'sean.o\'brien@contoso.onmicrosoft.com'
/** Chloé Dubois: non-ASCII display name, Databricks admin. */
export const DEMO_CHLOE_UPN = 'chloe.dubois@contoso.onmicrosoft.com'
/** Jane Doe of Fabrikam: a B2B guest. */
export const DEMO_GUEST_UPN = 'jane.doe_fabrikam.com#EXT#@contoso.onmicrosoft.com'
/** Ben Carter: left the company, accountEnabled false (still a member of IT). */
export const DEMO_DISABLED_UPN = 'ben.carter@contoso.onmicrosoft.com'

const groupIds = {
  allStaff: 'b7fd62ab-699d-43aa-88a1-4f82cff54180',
  engineering: '052f00e2-da74-40c4-8da6-4bd1e613a759',
  dataPlatform: '8f3b9a0f-1206-4f5e-b418-b6e000a771b5',
  dataPlatformOnCall: 'cb93061d-c307-4670-983f-b7729e2300a5',
  platform: '3e43966b-6c34-4532-b069-95da3172c776',
  web: 'bb4a644f-e8d8-4df3-bf62-eae78b8cddba',
  security: '1caae023-dfd1-4896-8f15-f78dc590bdb4',
  finance: '863bee58-31b7-415f-96a9-d6b177d94518',
  payroll: 'affdbc66-fa7f-4cdf-af90-64a51185c8e4',
  financeAnalysts: 'da911cae-0061-4802-9285-bb298a491f86',
  sales: 'a5186391-c17d-47e4-91f6-6d9734371779',
  salesAnalysts: '9c2eb6ea-5673-4cfb-af09-d26026367edc',
  salesEmea: '84e72780-0d03-48a6-a08a-624eafe06838',
  salesAmericas: '45e6e0ac-4be2-43b9-a574-2b8a976846bd',
  marketing: '4c23455c-6121-4ec1-882d-da34cb9b2093',
  people: 'd41ed99b-4e66-423a-b91e-8e6622aa8420',
  legal: '93b0549a-7e68-43d2-afd6-4de0aef8b2d8',
  it: '7d89c45c-2f56-45af-a6b0-8a99820d221b',
  databricksUsers: '9b23b7a6-5f77-48d8-9877-a97a41b4f54b',
  databricksAdmins: '6d4a36cd-2eec-4732-8f27-bf2f8b652987',
  externalCollaborators: 'ca1e1f6c-bf96-4839-a9e0-00233a41f67b',
  socialClub: '16477fbf-d783-48bd-8168-561d329d59c6'
}
/** Object ids of the demo groups. */
export const DEMO_GROUPS: Readonly<Record<keyof typeof groupIds, string>> = Object.freeze(groupIds)

// ---- users ----------------------------------------------------------------------------------------

/** A member of the tenant whose UPN and mail are `<upnName>@contoso.onmicrosoft.com`. */
function employee (id: string, upnName: string, givenName: string, surname: string, jobTitle: string, department: string): UserFixture {
  const userPrincipalName = `${upnName}@${DEMO_DOMAIN}`
  return {
    id,
    userPrincipalName,
    displayName: `${givenName} ${surname}`,
    mail: userPrincipalName,
    accountEnabled: true,
    userType: 'Member',
    givenName,
    surname,
    jobTitle,
    department,
    password: DEMO_PASSWORD
  }
}

const U = {
  alice: employee(DEMO_ALICE_ID, 'alice.martin', 'Alice', 'Martin', 'Data Engineer', 'Engineering'),
  bob: employee('246c396e-e366-429c-b3c2-965843a160df', 'bob.nguyen', 'Bob', 'Nguyen', 'Data Engineer', 'Engineering'),
  chloe: employee('b5c8a8f6-d6e3-486e-9e7c-f4d019a5f6ae', 'chloe.dubois', 'Chloé', 'Dubois', 'Staff Data Engineer', 'Engineering'),
  sean: employee('575613b9-26be-4447-a096-4c1e6311dd4b', 'sean.o\'brien', 'Sean', 'O\'Brien', 'Site Reliability Engineer', 'Engineering'),
  priya: employee('6d51cb39-5dad-43c4-9250-5ed741ecbc83', 'priya.patel', 'Priya', 'Patel', 'VP Engineering', 'Engineering'),
  diego: employee('18f03514-8f88-4c43-ae5a-1d9367dd8078', 'diego.alvarez', 'Diego', 'Alvarez', 'Frontend Engineer', 'Engineering'),
  mei: employee('a7ea083a-aae9-4937-a122-4c768d9e658e', 'mei.tanaka', 'Mei', 'Tanaka', 'Software Engineer', 'Engineering'),
  jonas: employee('cf62c555-909f-40f1-a29b-45818d3744a1', 'jonas.becker', 'Jonas', 'Becker', 'Security Engineer', 'Engineering'),
  fatima: employee('afb641cb-4aa5-4ec6-afce-d1d172133146', 'fatima.haddad', 'Fatima', 'Haddad', 'Security Analyst', 'Engineering'),
  liam: employee('eb2c4193-c1a9-4894-9920-b6d66d18ed89', 'liam.murphy', 'Liam', 'Murphy', 'Platform Engineer', 'Engineering'),
  lucas: employee('5e3fbc00-be07-444e-bb98-338f4d84650a', 'lucas.silva', 'Lucas', 'Silva', 'Data Engineer', 'Engineering'),
  ingrid: employee('7a1312c0-2cb2-42e3-8d5c-ec42a2aaaced', 'ingrid.olsen', 'Ingrid', 'Olsen', 'Site Reliability Engineer', 'Engineering'),
  soren: employee('cae86901-a8b2-4079-ad15-2f01fabf34b8', 'soren.larsen', 'Søren', 'Larsen', 'Platform Engineer', 'Engineering'),
  grace: employee('69224670-082f-44dc-ba96-85efd1b0f5ad', 'grace.kim', 'Grace', 'Kim', 'Chief Financial Officer', 'Finance'),
  hannah: employee('5e2b3e18-b932-40ee-890f-1bc3e532292e', 'hannah.schmidt', 'Hannah', 'Schmidt', 'Payroll Specialist', 'Finance'),
  omar: employee('af8d8b01-5628-43d3-b04b-0ce0507cf942', 'omar.shah', 'Omar', 'Shah', 'Accountant', 'Finance'),
  isabel: employee('35645045-e9cc-445b-b70e-c4561a0c34dd', 'isabel.garcia', 'Isabel', 'García', 'Financial Analyst', 'Finance'),
  noah: employee('f160fe12-81a7-41a0-81b1-52068ff5cb03', 'noah.williams', 'Noah', 'Williams', 'Financial Analyst', 'Finance'),
  rafael: employee('a5965de0-7d14-4851-8c26-2107f926b52c', 'rafael.costa', 'Rafael', 'Costa', 'Head of Sales', 'Sales'),
  sara: employee('e9a2ac70-ac56-494a-8c13-1750a383b35a', 'sara.lindqvist', 'Sara', 'Lindqvist', 'Account Executive', 'Sales'),
  tomas: employee('ec30b86a-40eb-4bda-a1a0-61c09c0c3b2e', 'tomas.reyes', 'Tomás', 'Reyes', 'Account Executive', 'Sales'),
  hiroshi: employee('8f418c2e-07af-417e-af41-de4cdb5d3540', 'hiroshi.ito', 'Hiroshi', 'Ito', 'Sales Engineer', 'Sales'),
  emma: employee('91728aff-98ef-42dc-acfa-dc828c52c72b', 'emma.taylor', 'Emma', 'Taylor', 'Sales Analyst', 'Sales'),
  kai: employee('dea85cd6-1f5d-41e5-b986-a9dbadedddff', 'kai.yamamoto', 'Kai', 'Yamamoto', 'Account Executive', 'Sales'),
  laura: employee('e5a46f31-548f-41bf-9afb-77f98263f9e5', 'laura.rossi', 'Laura', 'Rossi', 'Marketing Manager', 'Marketing'),
  nadia: employee('83c890fa-6464-4b0c-aefa-15b8a308b6d3', 'nadia.petrov', 'Nadia', 'Petrov', 'Content Strategist', 'Marketing'),
  siobhan: employee('2841bc23-98b8-4b3c-9c39-1e80fcb14a9c', 'siobhan.kelly', 'Siobhán', 'Kelly', 'Designer', 'Marketing'),
  yusuf: employee('c55487bb-1e32-45e5-bb79-56c513469ff8', 'yusuf.demir', 'Yusuf', 'Demir', 'Data Analyst', 'Finance'),
  amelia: employee('8f4361db-3206-4fdc-8692-6578babf50e8', 'amelia.clarke', 'Amelia', 'Clarke', 'Paralegal', 'Legal'),
  olivia: employee('062b5f2d-3e0c-4888-b6a9-f25418fbb36e', 'olivia.brown', 'Olivia', 'Brown', 'HR Business Partner', 'People'),
  ravi: employee('86b59639-321a-4feb-9cd8-bb157bb39639', 'ravi.singh', 'Ravi', 'Singh', 'Recruiter', 'People'),
  victor: employee('caa8ef60-19f6-4491-9139-99f1a563b694', 'victor.hansen', 'Victor', 'Hansen', 'Legal Counsel', 'Legal'),
  zara: employee('ff336e4f-03d5-41ab-bf2b-68e5904ce697', 'zara.ahmed', 'Zara', 'Ahmed', 'IT Administrator', 'IT'),
  ben: {
    ...employee('ca1c6248-634d-42dd-a0ec-11028719fa6b', 'ben.carter', 'Ben', 'Carter', 'Support Engineer', 'IT'),
    accountEnabled: false
  },
  jane: {
    id: 'abaa8b7c-7277-4b23-92a1-ec44197c29c6',
    userPrincipalName: DEMO_GUEST_UPN,
    displayName: 'Jane Doe (Fabrikam)',
    mail: 'jane.doe@fabrikam.com',
    accountEnabled: true,
    userType: 'Guest',
    givenName: 'Jane',
    surname: 'Doe',
    jobTitle: 'Contractor',
    department: null,
    password: DEMO_PASSWORD
  }
} satisfies Record<string, UserFixture>

// ---- service principals and applications ----------------------------------------------------------

const servicePrincipals: ServicePrincipalFixture[] = [
  { id: DEMO_RESOLVER_SP_ID, appId: DEMO_RESOLVER_APP_ID, displayName: 'jit-identity-resolver', accountEnabled: true, servicePrincipalType: 'Application' },
  { id: DEMO_ETL_SP_ID, appId: DEMO_ETL_APP_ID, displayName: 'Nightly ETL', accountEnabled: true, servicePrincipalType: 'Application' },
  { id: DEMO_BI_SP_ID, appId: DEMO_BI_APP_ID, displayName: 'BI Refresh', accountEnabled: true, servicePrincipalType: 'Application' },
  { id: DEMO_CLI_SP_ID, appId: DEMO_CLI_APP_ID, displayName: 'demo-cli', accountEnabled: true, servicePrincipalType: 'Application' }
]

const applications: ApplicationFixture[] = [
  {
    appId: DEMO_RESOLVER_APP_ID,
    displayName: 'jit-identity-resolver',
    secret: DEMO_RESOLVER_SECRET,
    roles: ['User.Read.All', 'GroupMember.Read.All', 'Application.Read.All'],
    accessTokenAcceptedVersion: 2,
    identifierUris: [DEMO_RESOLVER_URI],
    optionalClaims: ['idtyp']
  },
  // The resolver's own app role: the automation that onboards identities in bulk (local mode's walk-through).
  { appId: DEMO_ETL_APP_ID, displayName: 'Nightly ETL', secret: DEMO_ETL_SECRET, roles: ['Identity.Admin'] },
  { appId: DEMO_BI_APP_ID, displayName: 'BI Refresh', secret: DEMO_BI_SECRET, roles: [] },
  // Public client: no secret; used with the password grant (DEMO_PASSWORD).
  { appId: DEMO_CLI_APP_ID, displayName: 'demo-cli', roles: [] }
]

// ---- groups ---------------------------------------------------------------------------------------

const G = DEMO_GROUPS
function group (id: string, displayName: string, description: string, members: string[]): GroupFixture {
  return { id, displayName, description, securityEnabled: true, mailEnabled: false, members }
}

const groups: GroupFixture[] = [
  group(G.allStaff, 'All Staff', 'Everyone at Contoso', [G.engineering, G.finance, G.sales, G.marketing, G.people, G.legal, G.it]),
  group(G.engineering, 'Engineering', 'Engineering department', [U.priya.id, G.dataPlatform, G.platform, G.web, G.security]),
  group(G.dataPlatform, 'Data Platform', 'Lakehouse, pipelines and Databricks workspaces', [U.bob.id, U.chloe.id, U.lucas.id, U.jane.id, G.dataPlatformOnCall]),
  group(G.dataPlatformOnCall, 'Data Platform On-call', 'Current on-call rotation of Data Platform', [U.alice.id, U.sean.id]),
  group(G.platform, 'Platform', 'Cloud platform team', [U.liam.id, U.soren.id, U.ingrid.id]),
  group(G.web, 'Web', 'Web front-end team', [U.diego.id, U.mei.id]),
  group(G.security, 'Security', 'Security engineering', [U.jonas.id, U.fatima.id]),
  group(G.finance, 'Finance', 'Finance department', [U.grace.id, G.payroll, G.financeAnalysts]),
  group(G.payroll, 'Payroll', 'Payroll team', [U.hannah.id, U.omar.id]),
  group(G.financeAnalysts, 'Analysts', 'Finance analysts (FP&A)', [U.isabel.id, U.noah.id, U.yusuf.id]),
  group(G.sales, 'Sales', 'Sales department', [U.rafael.id, G.salesEmea, G.salesAmericas, G.salesAnalysts]),
  group(G.salesAnalysts, 'Analysts', 'Sales analysts', [U.emma.id]),
  group(G.salesEmea, 'Sales EMEA', 'Sales, Europe, Middle East and Africa', [U.sara.id, U.kai.id]),
  group(G.salesAmericas, 'Sales Americas', 'Sales, North and South America', [U.tomas.id, U.hiroshi.id]),
  group(G.marketing, 'Marketing', 'Marketing department', [U.laura.id, U.nadia.id, U.siobhan.id]),
  group(G.people, 'People', 'Human resources', [U.olivia.id, U.ravi.id]),
  group(G.legal, 'Legal', 'Legal department', [U.victor.id, U.amelia.id]),
  group(G.it, 'IT', 'Internal IT', [U.zara.id, U.ben.id]),
  group(G.databricksUsers, 'Databricks Users', 'Everyone entitled to the Databricks workspaces',
    [G.dataPlatform, G.financeAnalysts, G.salesAnalysts, DEMO_ETL_SP_ID, DEMO_BI_SP_ID]),
  group(G.databricksAdmins, 'Databricks Admins', 'Workspace administrators', [U.chloe.id, U.zara.id, DEMO_ETL_SP_ID]),
  group(G.externalCollaborators, 'External Collaborators', 'B2B guests', [U.jane.id]),
  {
    id: G.socialClub,
    displayName: 'Contoso Social Club',
    description: 'Distribution list: parties, book club, five-a-side',
    securityEnabled: false,
    mailEnabled: true,
    members: [U.alice.id, U.diego.id, U.isabel.id, U.kai.id, U.olivia.id]
  }
]

/** The demo tenant. A fresh copy on every call (a Directory may mutate what it is given). */
export function demoTenant (): TenantFixture {
  return structuredClone({
    tenantId: DEMO_TENANT_ID,
    domain: DEMO_DOMAIN,
    displayName: 'Contoso (demo)',
    users: Object.values(U),
    servicePrincipals,
    groups,
    applications
  })
}
