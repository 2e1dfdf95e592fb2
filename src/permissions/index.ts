export * from './levels.ts'
export * from './evaluate.ts'
