export * from './levels.ts'
export * from './evaluate.ts'
export * from './group-paths.ts'
