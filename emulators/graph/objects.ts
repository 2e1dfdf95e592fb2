// Directory entities as Graph serialises them: every property Graph v1.0 knows for users, groups and
// service principals (unknown values are null or empty, as in a cloud-only tenant), the default property
// sets returned without $select (spec §2.3), `@odata.type` for polymorphic collections, and $select.
import type { Directory, DirectoryObject, Group, ObjectKind, ServicePrincipal, User } from '../tenant/model.ts'
import { unknownSelectProperty } from './errors.ts'

export type Rec = Record<string, unknown> & { id: string }

export const ODATA_TYPE: Record<ObjectKind, string> = {
  user: '#microsoft.graph.user',
  group: '#microsoft.graph.group',
  servicePrincipal: '#microsoft.graph.servicePrincipal'
}

export const ENTITY_SET: Record<ObjectKind, string> = { user: 'users', group: 'groups', servicePrincipal: 'servicePrincipals' }

/** The names Graph uses in errors ("… of resource 'User'") and in `microsoft.graph.<type>`. */
export const RESOURCE_NAME: Record<ObjectKind, string> = { user: 'User', group: 'Group', servicePrincipal: 'ServicePrincipal' }

type Getter<T> = (o: T, d: Directory) => unknown

const nul = (): null => null
const empty = (): never[] => []

const USER_PROPS: Record<string, Getter<User>> = {
  id: u => u.id,
  businessPhones: empty,
  displayName: u => u.displayName,
  givenName: u => u.givenName,
  jobTitle: u => u.jobTitle,
  mail: u => u.mail,
  mobilePhone: nul,
  officeLocation: nul,
  preferredLanguage: nul,
  surname: u => u.surname,
  userPrincipalName: u => u.userPrincipalName,
  accountEnabled: u => u.accountEnabled,
  ageGroup: nul,
  city: nul,
  companyName: nul,
  consentProvidedForMinor: nul,
  country: nul,
  createdDateTime: nul,
  creationType: u => u.userType === 'Guest' ? 'Invitation' : null,
  deletedDateTime: nul,
  department: u => u.department,
  employeeHireDate: nul,
  employeeId: nul,
  employeeType: nul,
  externalUserState: u => u.userType === 'Guest' ? 'Accepted' : null,
  externalUserStateChangeDateTime: nul,
  faxNumber: nul,
  identities: (u, d) => [{ signInType: 'userPrincipalName', issuer: d.domain, issuerAssignedId: u.userPrincipalName }],
  imAddresses: empty,
  legalAgeGroupClassification: nul,
  mailNickname: u => u.userPrincipalName.split('@')[0] ?? u.userPrincipalName,
  onPremisesDistinguishedName: nul,
  onPremisesDomainName: nul,
  onPremisesImmutableId: nul,
  onPremisesLastSyncDateTime: nul,
  onPremisesSamAccountName: nul,
  onPremisesSecurityIdentifier: nul,
  onPremisesSyncEnabled: nul,
  onPremisesUserPrincipalName: nul,
  otherMails: empty,
  passwordPolicies: nul,
  postalCode: nul,
  preferredDataLocation: nul,
  proxyAddresses: u => u.mail === null ? [] : [`SMTP:${u.mail}`],
  securityIdentifier: u => securityIdentifier(u.id),
  showInAddressList: nul,
  state: nul,
  streetAddress: nul,
  usageLocation: nul,
  userType: u => u.userType
}

const USER_DEFAULT = ['businessPhones', 'displayName', 'givenName', 'jobTitle', 'mail', 'mobilePhone', 'officeLocation', 'preferredLanguage', 'surname', 'userPrincipalName', 'id']

const groupNickname = (g: Group): string => g.displayName.replace(/[^A-Za-z0-9]/g, '') || g.id.slice(0, 8)
const groupMail = (g: Group, d: Directory): string | null => g.mailEnabled ? `${groupNickname(g)}@${d.domain}` : null

const GROUP_PROPS: Record<string, Getter<Group>> = {
  id: g => g.id,
  deletedDateTime: nul,
  classification: nul,
  createdDateTime: nul,
  creationOptions: empty,
  description: g => g.description,
  displayName: g => g.displayName,
  expirationDateTime: nul,
  groupTypes: empty,
  isAssignableToRole: nul,
  mail: groupMail,
  mailEnabled: g => g.mailEnabled,
  mailNickname: groupNickname,
  membershipRule: nul,
  membershipRuleProcessingState: nul,
  onPremisesDomainName: nul,
  onPremisesLastSyncDateTime: nul,
  onPremisesNetBiosName: nul,
  onPremisesSamAccountName: nul,
  onPremisesSecurityIdentifier: nul,
  onPremisesSyncEnabled: nul,
  preferredDataLocation: nul,
  preferredLanguage: nul,
  proxyAddresses: (g, d) => { const m = groupMail(g, d); return m === null ? [] : [`SMTP:${m}`] },
  renewedDateTime: nul,
  resourceBehaviorOptions: empty,
  resourceProvisioningOptions: empty,
  securityEnabled: g => g.securityEnabled,
  securityIdentifier: g => securityIdentifier(g.id),
  theme: nul,
  uniqueName: nul,
  visibility: nul,
  onPremisesProvisioningErrors: empty,
  serviceProvisioningErrors: empty
}

const SP_PROPS: Record<string, Getter<ServicePrincipal>> = {
  id: s => s.id,
  deletedDateTime: nul,
  accountEnabled: s => s.accountEnabled,
  alternativeNames: empty,
  appDisplayName: (s, d) => d.application(s.appId)?.displayName ?? s.displayName,
  appDescription: nul,
  appId: s => s.appId,
  applicationTemplateId: nul,
  appOwnerOrganizationId: (s, d) => d.application(s.appId) !== undefined ? d.tenantId : null,
  appRoleAssignmentRequired: () => false,
  createdDateTime: nul,
  description: nul,
  disabledByMicrosoftStatus: nul,
  displayName: s => s.displayName,
  homepage: nul,
  loginUrl: nul,
  logoutUrl: nul,
  notes: nul,
  notificationEmailAddresses: empty,
  preferredSingleSignOnMode: nul,
  preferredTokenSigningKeyThumbprint: nul,
  replyUrls: empty,
  servicePrincipalNames: (s, d) => [s.appId, ...(d.application(s.appId)?.identifierUris ?? [])],
  servicePrincipalType: s => s.servicePrincipalType,
  signInAudience: (s, d) => d.application(s.appId) !== undefined ? 'AzureADMyOrg' : 'AzureADMultipleOrgs',
  tags: empty,
  tokenEncryptionKeyId: nul,
  addIns: empty,
  appRoles: empty,
  info: nul,
  keyCredentials: empty,
  oauth2PermissionScopes: empty,
  passwordCredentials: empty,
  resourceSpecificApplicationPermissions: empty,
  samlSingleSignOnSettings: nul,
  verifiedPublisher: () => ({ displayName: null, verifiedPublisherId: null, addedDateTime: null })
}

const PROPS: { [K in ObjectKind]: Record<string, Getter<never>> } = { user: USER_PROPS, group: GROUP_PROPS, servicePrincipal: SP_PROPS }

/** Default property sets (no $select): users get Graph's short list, groups and service principals everything. */
export const DEFAULT_PROPS: Record<ObjectKind, readonly string[]> = {
  user: USER_DEFAULT,
  group: Object.keys(GROUP_PROPS),
  servicePrincipal: Object.keys(SP_PROPS)
}

/** Navigation properties that `$expand` (and the group delta's `$select=members`) accept. */
export const NAVIGATION: Record<ObjectKind, readonly string[]> = {
  user: ['memberOf', 'transitiveMemberOf'],
  group: ['members', 'transitiveMembers', 'memberOf', 'transitiveMemberOf'],
  servicePrincipal: ['memberOf', 'transitiveMemberOf']
}

/** Every property of the object, keyed by Graph's names; $filter and $orderby work on this. */
export function record (d: Directory, o: DirectoryObject): Rec {
  const props = PROPS[o.kind] as Record<string, Getter<typeof o.object>>
  const out: Record<string, unknown> = {}
  for (const [name, get] of Object.entries(props)) out[name] = get(o.object, d)
  return out as Rec
}

/** The canonical (schema) spelling of a property of one of `kinds`, matched case-insensitively. */
export function canonicalProperty (name: string, kinds: readonly ObjectKind[]): string | undefined {
  const lower = name.toLowerCase()
  for (const k of kinds) for (const p of Object.keys(PROPS[k])) if (p.toLowerCase() === lower) return p
  return undefined
}

/**
 * Resolves `$select` against the possible types of a collection. A polymorphic collection (no cast)
 * accepts a property of any derived type and names `directoryObject` in its error, as Graph does.
 */
export function resolveSelect (select: readonly string[] | undefined, kinds: readonly ObjectKind[], typeName: string, extra: readonly string[] = []): string[] | undefined {
  if (select === undefined) return undefined
  const out: string[] = []
  for (const raw of select) {
    const extraMatch = extra.find(e => e.toLowerCase() === raw.toLowerCase())
    const name = extraMatch ?? canonicalProperty(raw, kinds)
    if (name === undefined) throw unknownSelectProperty(raw, typeName)
    if (!out.includes(name)) out.push(name)
  }
  return out
}

/** The JSON of one item: `@odata.type` first when asked, then the selected or default properties. */
export function project (rec: Rec, kind: ObjectKind, select: readonly string[] | undefined, withType: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (withType) out['@odata.type'] = ODATA_TYPE[kind]
  const names = select ?? DEFAULT_PROPS[kind]
  const props = PROPS[kind]
  for (const n of names) if (n in props) out[n] = rec[n]
  return out
}

/**
 * The on-premises-style SID Entra derives from a cloud object id: S-1-12-1 followed by the GUID's
 * 16 bytes (in .NET byte order) read as four little-endian uint32s.
 */
export function securityIdentifier (id: string): string {
  const hex = id.replace(/-/g, '')
  if (hex.length !== 32) return ''
  const b = Buffer.from(hex, 'hex')
  const net = Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)])
  return `S-1-12-1-${[0, 4, 8, 12].map(o => net.readUInt32LE(o)).join('-')}`
}
