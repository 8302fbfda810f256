// One colour per expression, shared by the report and the annotated video so a label reads the same
// everywhere. web/dashboard/app.js carries the same table (it is plain browser JS, not compiled).
import type { Expression } from '../types.js';

export const EXPRESSION_COLORS: Readonly<Record<Expression, string>> = {
  surprise: '#f2a900',
  fear: '#8e44ad',
  disgust: '#2e8b57',
  happiness: '#e8434f',
  sadness: '#2f6fdf',
  anger: '#a0522d',
  neutral: '#7f8c8d',
};
