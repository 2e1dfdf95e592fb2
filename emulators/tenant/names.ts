// Word lists for the tenant generator. Real-looking names, with a few that exercise escaping and Unicode
// handling on purpose (apostrophes, diacritics, quotes, backslashes).

export const FIRST_NAMES: readonly string[] = [
  'Adele', 'Aisha', 'Alex', 'Alice', 'Amelia', 'Ana', 'Andrés', 'Anika', 'Arjun', 'Astrid',
  'Ben', 'Bianca', 'Björn', 'Carlos', 'Charlotte', 'Chen', 'Chloé', 'Chris', 'Clara', 'Daniel',
  'David', 'Diego', 'Dmitri', 'Elena', 'Eli', 'Emma', 'Erik', 'Fatima', 'Felix', 'François',
  'Freya', 'Gabriel', 'Grace', 'Hannah', 'Hiroshi', 'Ibrahim', 'Ingrid', 'Isabel', 'Ivan', 'Jack',
  'Jane', 'Javier', 'Jonas', 'José', 'Julia', 'Kai', 'Karim', 'Kateřina', 'Laura', 'Lee',
  'Leila', 'Liam', 'Lina', 'Lucas', 'Łukasz', 'Maya', 'Mei', 'Miguel', 'Mohammed', 'Nadia',
  'Nikhil', 'Noah', 'Nora', 'Oliver', 'Olivia', 'Omar', 'Pablo', 'Priya', 'Rafael', 'Renée',
  'Ravi', 'Rosa', 'Sam', 'Sara', 'Sean', 'Siobhán', 'Sofia', 'Søren', 'Tariq', 'Tomás',
  'Tyler', 'Valentina', 'Victor', 'Wei', 'William', 'Yara', 'Yusuf', 'Zara', 'Zoë', 'Zoltán'
]

export const LAST_NAMES: readonly string[] = [
  'Abbott', 'Adeyemi', 'Alvarez', 'Andersson', 'Bauer', 'Becker', 'Bennett', 'Brown', 'Castillo', 'Chen',
  'Clarke', 'Costa', 'D\'Angelo', 'Dubois', 'Dvořák', 'Evans', 'Fischer', 'Fernández', 'García', 'Gupta',
  'Hansen', 'Haddad', 'Hughes', 'Ito', 'Jansen', 'Johnson', 'Kaur', 'Kim', 'Kowalski', 'Larsen',
  'Lefèvre', 'Li', 'López', 'Martin', 'Meyer', 'Müller', 'Murphy', 'Nakamura', 'Nguyen', 'Novak',
  'O\'Brien', 'O\'Connor', 'Okafor', 'Olsen', 'Patel', 'Pereira', 'Petrov', 'Quinn', 'Ramírez', 'Reyes',
  'Rossi', 'Sato', 'Schmidt', 'Schneider', 'Shah', 'Silva', 'Singh', 'Smith', 'Sørensen', 'Suzuki',
  'Tanaka', 'Taylor', 'Thompson', 'Van der Berg', 'Wagner', 'Walker', 'Wang', 'Weber', 'Williams', 'Wilson',
  'Wójcik', 'Yamamoto', 'Yilmaz', 'Zhang', 'Zimmermann'
]

export const JOB_TITLES: readonly string[] = [
  'Software Engineer', 'Senior Software Engineer', 'Data Engineer', 'Data Scientist', 'Analyst',
  'Financial Analyst', 'Accountant', 'Account Executive', 'Sales Manager', 'Product Manager',
  'Designer', 'Recruiter', 'HR Business Partner', 'Legal Counsel', 'Site Reliability Engineer',
  'Support Engineer', 'Marketing Specialist', 'Program Manager', 'Director', 'Team Lead'
]

/** Roots of the group trees: one per department. */
export const DEPARTMENTS: readonly string[] = [
  'Engineering', 'Finance', 'Sales', 'Marketing', 'Human Resources', 'Legal', 'Operations',
  'Customer Success', 'Product', 'Research', 'IT', 'Security', 'Procurement', 'Facilities',
  'Data & Analytics', 'Support', 'Communications', 'Strategy', 'Risk & Compliance', 'Supply Chain',
  'Manufacturing', 'Quality', 'Corporate Development', 'Treasury'
]

/** Name segments of the nested groups, by level (index 0 = level 2, i.e. the children of a department). */
export const LEVEL_SEGMENTS: readonly (readonly string[])[] = [
  ['Payroll', 'Platform', 'Infrastructure', 'Analytics', 'Recruiting', 'Accounts Payable', 'Billing', 'Identity',
    'Field Sales', 'Partnerships', 'Tax', 'Audit', 'Mobile', 'Web', 'Benefits', 'Reporting'],
  ['EMEA', 'APAC', 'AMER', 'LATAM', 'UK', 'DACH', 'Nordics', 'ANZ', 'Japan', 'India', 'Benelux', 'Iberia'],
  ['London', 'Paris', 'Berlin', 'Zürich', 'München', 'São Paulo', 'Montréal', 'Kraków', 'Tokyo', 'Seattle',
    'Dublin', 'Oslo', 'Reykjavík', 'Bengaluru', 'Sydney', 'Toronto'],
  ['Core', 'Tooling', 'Delivery', 'Enablement', 'Automation', 'Reliability', 'Integrations', 'Insights'],
  ['Leads', 'On-call', 'Approvers', 'Readers', 'Contributors', 'Admins', 'Interns', 'Contractors'],
  ['Falcon', 'Orion', 'Atlas', 'Nimbus', 'Aurora', 'Kestrel', 'Phoenix', 'Zephyr', 'Ægir', 'Borealis'],
  ['Alpha', 'Beta', 'Gamma', 'Delta', 'Epsilon', 'Zeta'],
  ['Squad 1', 'Squad 2', 'Squad 3', 'Squad 4', 'Squad 5', 'Squad 6'],
  ['Build', 'Run', 'Review', 'Release', 'Triage', 'Pager']
]

/**
 * Names the generator always gives to a few groups (when there are enough), so that every generated tenant
 * exercises quoting and escaping: double quotes, a backslash, an apostrophe, non-ASCII letters.
 */
export const QUIRKY_GROUP_NAMES: readonly string[] = [
  'R&D "Core"',
  'CORP\\Domain Users',
  'O\'Brien\'s Reviewers',
  'Équipe Zoë – Montréal'
]

/** Partner domains of guest users. */
export const GUEST_DOMAINS: readonly string[] = [
  'fabrikam.com', 'northwindtraders.com', 'adventure-works.com', 'tailspintoys.com', 'wingtiptoys.com',
  'litwareinc.com', 'woodgrovebank.com', 'proseware.com'
]

/** Workload names for service principals. */
export const WORKLOADS: readonly string[] = [
  'Nightly ETL', 'BI Refresh', 'Payroll Export', 'Airflow Scheduler', 'dbt Runner', 'Feature Store Sync',
  'Audit Log Shipper', 'CRM Ingest', 'Backup Agent', 'Lakehouse Compactor', 'ML Training', 'Report Mailer'
]
