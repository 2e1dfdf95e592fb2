// What a workspace object's id looks like, per type, checked before anything is asked of Databricks: a
// malformed id is a 400 that says the shape (never a 502 quoting Databricks, never a path built from `..`
// or an encoded `/`), and an id of the right shape that names nothing is Databricks' 404 OBJECT_NOT_FOUND.
//
// The shapes are what Databricks issues: Lakeview dashboards 32 hexadecimal characters; workspace tree
// objects (notebooks, folders, files, repos) and jobs a 64-bit number; clusters `0123-456789-abcdefgh`;
// SQL warehouses hexadecimal. Where the shape is not certain (pipelines, queries, experiments, models,
// endpoints, apps, …) a conservative charset of letters, digits, `.`, `_` and `-` (never `..`) is accepted.
import createError from '@fastify/error'
import type { ObjectType } from '../permissions/levels.ts'
import { quoted } from './validation.ts'

export const InvalidObjectId = createError('INVALID_OBJECT_ID', 'The objectId %s is not a valid id for %s: it must be %s. Check the id (the object\'s URL in the workspace shows it).', 400)

interface Shape {
  pattern: RegExp
  /** What the id must be, in words, with an example. */
  shape: string
}

const WORKSPACE_OBJECT: Shape = { pattern: /^[0-9]{1,20}$/, shape: 'digits, the workspace object id (e.g. 1234567890123456; get-status\'s object_id)' }
const SAFE: Shape = { pattern: /^[A-Za-z0-9._-]{1,256}$/, shape: 'letters, digits, ".", "_" or "-" (at most 256, never "..")' }

const SHAPES: Partial<Record<ObjectType, Shape>> = {
  dashboards: { pattern: /^[0-9a-f]{32}$/i, shape: 'a Lakeview dashboard id: 32 hexadecimal characters (e.g. 01ef3c8c0d4a1e6b9a7d4e1b8c9f0a2b)' },
  notebooks: WORKSPACE_OBJECT,
  directories: WORKSPACE_OBJECT,
  files: WORKSPACE_OBJECT,
  repos: WORKSPACE_OBJECT,
  jobs: { pattern: /^[0-9]{1,20}$/, shape: 'a job id: digits (e.g. 123456789012345)' },
  clusters: { pattern: /^[0-9]{4}-[0-9]{6}-[a-z0-9]{8}$/i, shape: 'a cluster id: four digits, six digits and eight letters or digits (e.g. 0123-456789-abcdefgh)' },
  warehouses: { pattern: /^[0-9a-f]{1,32}$/i, shape: 'a SQL warehouse id: hexadecimal (e.g. 1234567890abcdef)' }
}

/** The shape of an id of `objectType`, in words. */
export function objectIdShape (objectType: ObjectType): string {
  return (SHAPES[objectType] ?? SAFE).shape
}

/** Whether `objectId` has the shape of an id of `objectType`. */
export function isObjectId (objectType: ObjectType, objectId: string): boolean {
  return (SHAPES[objectType] ?? SAFE).pattern.test(objectId) && !objectId.includes('..')
}

/** The id as given, or 400 INVALID_OBJECT_ID naming the shape. */
export function checkObjectId (objectType: ObjectType, objectId: string): string {
  if (!isObjectId(objectType, objectId)) throw new InvalidObjectId(quoted(objectId), objectType, objectIdShape(objectType))
  return objectId
}
