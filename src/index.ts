/** Public entry of the package (`exports["."]`): the pure core API. */
export * from './core/index.ts';
