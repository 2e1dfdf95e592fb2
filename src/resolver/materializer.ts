// Materialization: what the resolver knows of a principal (its direct groups and the nesting of its
// transitive closure), handed to the Target so the Databricks account agrees with Entra.
import type { Resolution, Resolver } from './resolver.ts'
import { TargetUnavailableError, type Materialized, type Target } from '../target/port.ts'
import { DatabricksError, TargetConfigurationError } from '../target/errors.ts'
import { TargetMisconfigured, TargetRejected, upstreamUnavailable } from './errors.ts'

export class Materializer {
  constructor (private readonly resolver: Resolver, private readonly target: Target) {}

  async materialize ({ principal, groups }: Resolution): Promise<Materialized> {
    const inClosure = new Set(groups.map(g => g.id))
    const [direct, parents] = await Promise.all([
      this.resolver.directGroups(principal),
      this.resolver.directParents(principal.tenantId, [...inClosure])
    ])
    // Only edges inside the closure: the principal's view of Entra, nothing about unrelated groups.
    const edges = new Map([...parents].map(([id, ps]) => [id, ps.filter(p => inClosure.has(p))]))
    try {
      return await this.target.materialize({
        tenantId: principal.tenantId,
        principal,
        groups,
        directGroupIds: direct.map(g => g.id).filter(id => inClosure.has(id)),
        parents: edges
      })
    } catch (err) {
      if (err instanceof TargetUnavailableError) throw upstreamUnavailable('Databricks', err.retryAfterSeconds, err.throttled)
      if (err instanceof TargetConfigurationError) throw new TargetMisconfigured(err.message)
      if (err instanceof DatabricksError) throw new TargetRejected(err.message)
      throw err
    }
  }
}
