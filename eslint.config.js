// Lint: what the type checker cannot see. The rules that matter here keep every promise handled
// (a floating promise whose rejection nobody handles would end the process for every guild) and
// every async callback awaited where it is passed. `void p` does not count as handling.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.tools/**', 'demo-out/**', 'data/**', 'coverage/**'] },
  {
    files: ['src/**/*.ts', 'sim/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false, ignoreIIFE: false }],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: true, attributes: false, properties: true, returns: true, variables: true } }],
      '@typescript-eslint/await-thenable': 'error',
    },
  },
);
